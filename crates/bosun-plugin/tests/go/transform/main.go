// A transform plugin written with hashicorp/go-plugin (Debian's 1.0.1), which Bosun's host
// loads in its tests: it caps `spec.threshold` at the configured `max_threshold` (default 100)
// and rejects negative thresholds, like the Rust example `ratelimit-cap`. Configured with a
// `relay_service` id, it instead relays each request, renamed `relayed:<name>`, to the
// Transform service the host offers under that id on go-plugin's broker.
//
// The tests generate the Go code of bosun.plugin.v1.Transform with protoc into
// $GOPATH/src/bosun/plugin/v1 and build this file in GOPATH mode, offline.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "bosun/plugin/v1"
)

// Must match HandshakeConfig::bosun() in crates/bosun-plugin/src/lib.rs.
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BOSUN_PLUGIN",
	MagicCookieValue: "b0sun-pl4gin-7e3c5a",
}

// capper implements bosun.plugin.v1.Transform.
type capper struct {
	broker *plugin.GRPCBroker
	max    uint64
	// relay is the broker service id to relay to; 0: none.
	relay uint32
}

func (c *capper) Configure(_ context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	var config struct {
		MaxThreshold *int64  `json:"max_threshold"`
		RelayService *uint32 `json:"relay_service"`
	}
	if err := json.Unmarshal([]byte(req.ConfigJson), &config); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "config is not JSON: %v", err)
	}
	if config.RelayService != nil {
		atomic.StoreUint32(&c.relay, *config.RelayService)
		return &pb.ConfigureResponse{}, nil
	}
	if config.MaxThreshold == nil || *config.MaxThreshold < 0 {
		return nil, status.Error(codes.InvalidArgument, "config needs max_threshold, a non-negative integer")
	}
	atomic.StoreUint64(&c.max, uint64(*config.MaxThreshold))
	return &pb.ConfigureResponse{}, nil
}

func (c *capper) Transform(ctx context.Context, req *pb.TransformRequest) (*pb.TransformResponse, error) {
	if relay := atomic.LoadUint32(&c.relay); relay != 0 {
		return c.relayToHost(ctx, relay, req)
	}
	var doc map[string]interface{}
	if err := json.Unmarshal(req.DocumentJson, &doc); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "document is not JSON: %v", err)
	}
	unchanged := &pb.TransformResponse{Result: &pb.TransformResponse_Unchanged{Unchanged: true}}
	spec, ok := doc["spec"].(map[string]interface{})
	if !ok {
		return unchanged, nil
	}
	threshold, ok := spec["threshold"].(float64)
	if !ok {
		return unchanged, nil
	}
	max := atomic.LoadUint64(&c.max)
	switch {
	case threshold < 0:
		reason := fmt.Sprintf("%s/%s: threshold %v is negative", req.Namespace, req.Name, threshold)
		return &pb.TransformResponse{Result: &pb.TransformResponse_RejectedReason{RejectedReason: reason}}, nil
	case threshold <= float64(max):
		return unchanged, nil
	}
	spec["threshold"] = max
	changed, err := json.Marshal(doc)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "cannot encode the document: %v", err)
	}
	return &pb.TransformResponse{Result: &pb.TransformResponse_ChangedJson{ChangedJson: changed}}, nil
}

// relayToHost dials the host's broker service and calls its Transform.
func (c *capper) relayToHost(ctx context.Context, service uint32, req *pb.TransformRequest) (*pb.TransformResponse, error) {
	conn, err := c.broker.Dial(service)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "cannot dial the host's service %d: %v", service, err)
	}
	defer conn.Close()
	relayed := *req
	relayed.Name = "relayed:" + req.Name
	return pb.NewTransformClient(conn).Transform(ctx, &relayed)
}

// transformPlugin registers the service on go-plugin's gRPC server; it has no net/rpc side
// and no Go host side.
type transformPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (transformPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterTransformServer(s, &capper{broker: broker, max: 100})
	return nil
}

func (transformPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errors.New("this plugin has no Go host side")
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         map[string]plugin.Plugin{"transform": transformPlugin{}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
