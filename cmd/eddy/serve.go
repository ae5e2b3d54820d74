package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/actors/cluster"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/metrics"
	"github.com/eddy-stream/eddy/internal/statusapi"
)

// clusterFlags are eddy run's flags for running as one node of a cluster.
type clusterFlags struct {
	port  int
	host  string
	peers []string
}

func addClusterFlags(fl *pflag.FlagSet, f *clusterFlags) {
	fl.IntVar(&f.port, "cluster-port", 0, "join the pipeline's cluster, with the node's remote on this port (0: not clustered, unless --peers is given; then any free port); see docs/cluster.md")
	fl.StringVar(&f.host, "cluster-host", "", "the address the node's remote listens on and other nodes reach it at (default: this machine's entry of --peers, else 127.0.0.1)")
	fl.StringSliceVar(&f.peers, "peers", nil, "HOST:PORT,...: the health ports of every node of the cluster, this one's included, HOST:LOW-HIGH for a range (default "+strings.Join(cluster.DefaultPeers, ",")+": the nodes on this machine)")
}

func (f clusterFlags) clustered() bool { return f.port > 0 || len(f.peers) > 0 }

// serve starts what --http and the cluster flags ask for: the status
// server (with the Prometheus metrics at /metrics) (on 127.0.0.1 and any free port when clustered without --http),
// the node's membership of its cluster, and its entry in the runtime
// directory that eddy status and eddy query look in. It sets cfg.OnReady
// to hand the run to local; stop undoes it all.
func serve(ctx context.Context, log *slog.Logger, f runFlags, pipeline, srcURI string, cfg *actors.Config, local *lateLocal) (stop func(), err error) {
	addr := listenAddr(f.httpAddr)
	if addr == "" && f.cluster.clustered() {
		addr = "127.0.0.1:0"
	}
	if addr == "" {
		return func() {}, nil
	}
	sec, err := f.security.httpSecurity()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", addr, err)
	}
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	stops = append(stops, func() { ln.Close() })
	reach, advertise := httpAddrs(ln.Addr().(*net.TCPAddr), f.cluster.host)
	if sec.tls != nil {
		reach, advertise = sec.scheme()+reach, sec.scheme()+advertise
	}
	var node *cluster.Node
	if f.cluster.clustered() {
		group, _ := kafka.GroupOf(srcURI)
		ccfg := cluster.Config{
			Name: cluster.Name(pipeline, group), Host: f.cluster.host, Port: f.cluster.port,
			Peers: f.cluster.peers, HTTP: advertise, Logger: log, Remote: sec.remote(log),
			Health: sec.nodeAuth(log),
		}
		if g, ok := cfg.Source.(cluster.Group); ok {
			ccfg.Group = g // a gone node's partitions move at once
		}
		node, err = cluster.Join(ctx, ccfg, local)
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, node.Leave)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(metrics.Run{Pipeline: cfg.Pipeline, Node: cfg.Node, Stats: cfg.Stats, Status: local.Status, Logger: log}))
	mux.Handle("/", statusapi.New(local, node))
	handler, served := sec.guard(mux, ln, log)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: handler}
	go srv.Serve(served)
	stops = append(stops, func() { srv.Close() })
	entry := statusapi.Entry{Pipeline: pipeline, HTTP: reach, TokenFile: absPath(f.security.tokenFile), CAFile: absPath(sec.caFile)}
	if node != nil {
		entry.Cluster = node.Name()
	}
	stops = append(stops, register(log, entry))
	cfg.OnReady = func(h *actors.Handle) {
		local.h.Store(h)
		log.Info("serving status and state", "addr", advertise)
	}
	return stop, nil
}

// register puts the node's entry in the runtime directory, where eddy
// status and eddy query find it; remove takes it out.
func register(log *slog.Logger, e statusapi.Entry) (remove func()) {
	remove, err := statusapi.Register(e)
	if err != nil {
		log.Warn("could not register in the runtime directory: eddy status and eddy query need --http to find this node", "dir", statusapi.RuntimeDir(), "err", err)
		return func() {}
	}
	return remove
}

// httpAddrs are the status server's address as this machine reaches it
// (for the runtime directory) and as other machines do (advertised to the
// cluster): a server on every interface is 127.0.0.1 here, and the
// cluster host or the host name there.
func httpAddrs(a *net.TCPAddr, clusterHost string) (reach, advertise string) {
	port := strconv.Itoa(a.Port)
	if !a.IP.IsUnspecified() {
		s := net.JoinHostPort(a.IP.String(), port)
		return s, s
	}
	host := clusterHost
	if host == "" {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort("127.0.0.1", port), net.JoinHostPort(host, port)
}

// absPath is path made absolute, for a client elsewhere; "" stays "".
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil && path != "" {
		return abs
	}
	return path
}

// lateLocal is the engine's Handle once the run has started, and what the
// run is (page.go) once its sinks are open.
type lateLocal struct {
	h    atomic.Pointer[actors.Handle]
	info atomic.Pointer[statusapi.PipelineInfo]
}

var errStarting = errors.New("the pipeline is starting")

func (l *lateLocal) Status(ctx context.Context) (actors.Status, error) {
	if h := l.h.Load(); h != nil {
		return h.Status(ctx)
	}
	return actors.Status{}, errStarting
}

func (l *lateLocal) State(ctx context.Context, key string) ([]connectors.Row, error) {
	if h := l.h.Load(); h != nil {
		return h.State(ctx, key)
	}
	return nil, errStarting
}

func (l *lateLocal) Share(ctx context.Context, key string) (actors.Share, error) {
	if h := l.h.Load(); h != nil {
		return h.Share(ctx, key)
	}
	return actors.Share{}, errStarting
}

func (l *lateLocal) Merge(ctx context.Context, key string, shares [][]byte) ([]connectors.Row, error) {
	if h := l.h.Load(); h != nil {
		return h.Merge(ctx, key, shares)
	}
	return nil, errStarting
}
