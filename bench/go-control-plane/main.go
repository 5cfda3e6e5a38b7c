// Command gcp-bench-server is the reference xDS server for Bosun's push-path benchmark: the same
// resources as `bosun-bench server`, served by go-control-plane's SnapshotCache over ADS (State of
// the World and Delta), with the same stdio protocol, so `bosun-bench --server-cmd` can measure
// both servers with one client.
//
// Protocol: it prints `listening <addr>`; each `update` line on stdin sets a new snapshot in which
// one resource changed (the endpoints of cluster 0, or with --change cluster the cluster itself),
// then it prints `updated <µs>`: how long making the snapshot and setting it (which wakes the
// watches) took. It exits when stdin closes.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
)

// group is the node group every benchmark client belongs to (node.cluster), as in bosun-bench.
const group = "bench"

// endpointsPerCluster is the number of endpoints in each ClusterLoadAssignment.
const endpointsPerCluster = 4

// change names which resource an update changes.
type change string

const (
	changeEndpoints change = "endpoints"
	changeCluster   change = "cluster"
)

// byNodeCluster groups nodes by node.cluster, like Bosun's ByNodeCluster.
type byNodeCluster struct{}

// ID returns the node's cluster, the key its snapshot is stored under.
func (byNodeCluster) ID(node *corev3.Node) string {
	return node.GetCluster()
}

// config is the server's command line.
type config struct {
	addr      string
	clusters  int
	listeners int
	change    change
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("gcp-bench-server", flag.ContinueOnError)
	var cfg config
	var changeName string
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:0", "address to listen on")
	fs.IntVar(&cfg.clusters, "clusters", 100, "EDS clusters in the snapshot")
	fs.IntVar(&cfg.listeners, "listeners", 10, "listeners (each with its RDS route configuration)")
	fs.StringVar(&changeName, "change", string(changeEndpoints), "which resource an update changes: endpoints or cluster")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.clusters < 1 {
		return cfg, fmt.Errorf("--clusters: must be at least 1, got %d", cfg.clusters)
	}
	if cfg.listeners < 0 {
		return cfg, fmt.Errorf("--listeners: must not be negative, got %d", cfg.listeners)
	}
	switch change(changeName) {
	case changeEndpoints, changeCluster:
		cfg.change = change(changeName)
	default:
		return cfg, fmt.Errorf("--change: must be endpoints or cluster, got %q", changeName)
	}
	return cfg, nil
}

func clusterName(i int) string {
	return fmt.Sprintf("cluster-%04d", i)
}

func newCluster(i int, generation int) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 clusterName(i),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{},
	}
	if generation != 0 {
		c.AltStatName = fmt.Sprintf("generation-%d", generation)
	}
	return c
}

func newEndpoints(cluster int, generation int) *endpointv3.ClusterLoadAssignment {
	lbEndpoints := make([]*endpointv3.LbEndpoint, 0, endpointsPerCluster)
	for e := 0; e < endpointsPerCluster; e++ {
		address := &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address:       fmt.Sprintf("10.%d.%d.%d", cluster/250, cluster%250, e),
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(8000 + generation)},
		}}}
		lbEndpoints = append(lbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: address}},
		})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: clusterName(cluster),
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbEndpoints}},
	}
}

func newListener(l int) (*listenerv3.Listener, error) {
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: fmt.Sprintf("listener-%03d", l),
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{
			Rds: &hcmv3.Rds{RouteConfigName: routeName(l)},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("listener %d: encoding its HttpConnectionManager: %w", l, err)
	}
	return &listenerv3.Listener{
		Name: fmt.Sprintf("listener-%03d", l),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
			}},
		}},
	}, nil
}

func routeName(l int) string {
	return fmt.Sprintf("route-%03d", l)
}

func newRouteConfiguration(l int, clusters int) *routev3.RouteConfiguration {
	routes := make([]*routev3.Route, 0, min(clusters, 10))
	for c := 0; c < min(clusters, 10); c++ {
		routes = append(routes, &routev3.Route{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/" + clusterName(c)}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: clusterName(c)},
			}},
		})
	}
	return &routev3.RouteConfiguration{
		Name: routeName(l),
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "all",
			Domains: []string{"*"},
			Routes:  routes,
		}},
	}
}

// snapshot builds the snapshot of one generation. Each type has its own version: only the type
// that `change` names gets a new version when the generation grows, so a State of the World
// client is sent only that type again (as go-control-plane users version per type).
func snapshot(cfg config, generation int) (*cachev3.Snapshot, error) {
	clusterGen, endpointsGen := 0, 0
	switch cfg.change {
	case changeCluster:
		clusterGen = generation
	case changeEndpoints:
		endpointsGen = generation
	}
	clusters := make([]types.Resource, 0, cfg.clusters)
	endpoints := make([]types.Resource, 0, cfg.clusters)
	for c := 0; c < cfg.clusters; c++ {
		cg, eg := 0, 0
		if c == 0 {
			cg, eg = clusterGen, endpointsGen
		}
		clusters = append(clusters, newCluster(c, cg))
		endpoints = append(endpoints, newEndpoints(c, eg))
	}
	listeners := make([]types.Resource, 0, cfg.listeners)
	routes := make([]types.Resource, 0, cfg.listeners)
	for l := 0; l < cfg.listeners; l++ {
		listener, err := newListener(l)
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, listener)
		routes = append(routes, newRouteConfiguration(l, cfg.clusters))
	}
	snap := &cachev3.Snapshot{}
	snap.Resources[types.Cluster] = cachev3.NewResources(strconv.Itoa(clusterGen), clusters)
	snap.Resources[types.Endpoint] = cachev3.NewResources(strconv.Itoa(endpointsGen), endpoints)
	snap.Resources[types.Listener] = cachev3.NewResources("0", listeners)
	snap.Resources[types.Route] = cachev3.NewResources("0", routes)
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("generation %d: inconsistent snapshot: %w", generation, err)
	}
	return snap, nil
}

func run(cfg config) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := cachev3.NewSnapshotCache(true, byNodeCluster{}, nil)
	first, err := snapshot(cfg, 0)
	if err != nil {
		return err
	}
	if err := cache.SetSnapshot(ctx, group, first); err != nil {
		return fmt.Errorf("setting the first snapshot: %w", err)
	}
	listener, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", cfg.addr, err)
	}
	grpcServer := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(grpcServer, serverv3.NewServer(ctx, cache, nil))
	served := make(chan error, 1)
	go func() { served <- grpcServer.Serve(listener) }()
	defer grpcServer.Stop()

	out := bufio.NewWriter(os.Stdout)
	if _, err := fmt.Fprintf(out, "listening %s\n", listener.Addr()); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return err
	}
	lines := bufio.NewScanner(os.Stdin)
	generation := 0
	for lines.Scan() {
		if strings.TrimSpace(lines.Text()) != "update" {
			continue
		}
		generation++
		started := time.Now()
		next, err := snapshot(cfg, generation)
		if err != nil {
			return err
		}
		if err := cache.SetSnapshot(ctx, group, next); err != nil {
			return fmt.Errorf("setting snapshot %d: %w", generation, err)
		}
		if _, err := fmt.Fprintf(out, "updated %d\n", time.Since(started).Microseconds()); err != nil {
			return err
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
	if err := lines.Err(); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	select {
	case err := <-served:
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serving: %w", err)
		}
	default:
	}
	return nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "gcp-bench-server:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "gcp-bench-server:", err)
		os.Exit(1)
	}
}
