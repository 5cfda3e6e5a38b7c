// {{name}}: a Bosun transform plugin in Go, on hashicorp/go-plugin.
//
// Bosun calls Configure with the `config` table of the plugin's [[plugin]] entry (as JSON)
// before any other call, and Transform with every document written of the kinds the entry
// names, after validation. Answer Unchanged, ChangedJson (the new document) or RejectedReason;
// a rejection is reported to the writer like a validation error.
//
// This one refuses documents without an `app` label when "require_app_label" is true, and
// adds the labels of "add_labels" (an object of strings) to every document.
//
// transform.pb.go is generated from transform.proto:
//   protoc --go_out=plugins=grpc,paths=source_relative:. transform.proto
// (`bosun plugin new` ran it if protoc and protoc-gen-go were installed). Build without
// modules, as Debian's Go packages are:
//   GO111MODULE=off GOPATH=$HOME/go:/usr/share/gocode go build
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Bosun's handshake: the cookie and the protocol version.
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BOSUN_PLUGIN",
	MagicCookieValue: "b0sun-pl4gin-7e3c5a",
}

type config struct {
	RequireAppLabel bool              `json:"require_app_label"`
	AddLabels       map[string]string `json:"add_labels"`
}

type transform struct {
	mu     sync.RWMutex
	config config
}

func (t *transform) Configure(_ context.Context, req *ConfigureRequest) (*ConfigureResponse, error) {
	var c config
	if err := json.Unmarshal([]byte(req.ConfigJson), &c); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "config: %v", err)
	}
	t.mu.Lock()
	t.config = c
	t.mu.Unlock()
	return &ConfigureResponse{}, nil
}

func (t *transform) Transform(_ context.Context, req *TransformRequest) (*TransformResponse, error) {
	t.mu.RLock()
	c := t.config
	t.mu.RUnlock()
	var doc map[string]interface{}
	if err := json.Unmarshal(req.DocumentJson, &doc); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "document is not JSON: %v", err)
	}
	metadata, ok := doc["metadata"].(map[string]interface{})
	if !ok {
		return nil, status.Error(codes.InvalidArgument, "document has no metadata")
	}
	labels, _ := metadata["labels"].(map[string]interface{})
	if labels == nil {
		labels = map[string]interface{}{}
	}
	if _, has := labels["app"].(string); c.RequireAppLabel && !has {
		reason := fmt.Sprintf("%s %s/%s has no app label", req.Kind, req.Namespace, req.Name)
		return &TransformResponse{Result: &TransformResponse_RejectedReason{RejectedReason: reason}}, nil
	}
	changed := false
	for k, v := range c.AddLabels {
		if labels[k] != v {
			labels[k] = v
			changed = true
		}
	}
	if !changed {
		return &TransformResponse{Result: &TransformResponse_Unchanged{Unchanged: true}}, nil
	}
	metadata["labels"] = labels
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encoding the document: %v", err)
	}
	return &TransformResponse{Result: &TransformResponse_ChangedJson{ChangedJson: out}}, nil
}

// grpcPlugin registers the service on go-plugin's gRPC server.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl *transform
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterTransformServer(s, p.impl)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, fmt.Errorf("the host side is Bosun")
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         map[string]plugin.Plugin{"{{kind}}": &grpcPlugin{impl: &transform{}}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
