package nodeauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"github.com/eddy-stream/eddy/internal/testenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The options, applied to protoactor's remote config, make its gRPC server
// answer only calls over TLS with the token, which its dial options send.
func TestRemoteOptions(t *testing.T) {
	cert, pool := testenv.SelfSigned(t)
	const token = "cluster-token-0123456789"
	cfg := remote.Configure("127.0.0.1", 0, RemoteOptions(Config{Token: token, Cert: &cert, RootCAs: pool})...)
	srv := grpc.NewServer(cfg.ServerOptions...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Stop()
	tlsOnly := grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool}))
	for _, tc := range []struct {
		name        string
		dial        []grpc.DialOption
		errContains string
	}{
		{"the remote's own dial options", cfg.DialOptions, ""},
		{"no TLS", []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, "Unavailable"},
		{"TLS without the token", []grpc.DialOption{tlsOnly}, "this node needs the cluster's token"},
		{"another token", dialOptions(t, Config{Token: "another-token-0123456789", Cert: &cert, RootCAs: pool}), "this node needs the cluster's token"},
		{"not trusting the certificate", dialOptions(t, Config{Token: token, Cert: &cert, RootCAs: x509.NewCertPool()}), "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := grpc.Dial(ln.Addr().String(), tc.dial...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			switch {
			case tc.errContains == "" && err != nil:
				t.Fatalf("a call with the remote's dial options: %v", err)
			case tc.errContains != "" && (err == nil || !strings.Contains(err.Error(), tc.errContains)):
				t.Fatalf("got %v, want an error containing %q", err, tc.errContains)
			}
		})
	}
	if RemoteOptions(Config{}) != nil {
		t.Fatal("options for a config that asks for nothing: want none, the remote as protoactor configures it")
	}
}

// dialOptions are the dial options RemoteOptions gives c.
func dialOptions(t *testing.T, c Config) []grpc.DialOption {
	t.Helper()
	return remote.Configure("127.0.0.1", 0, RemoteOptions(c)...).DialOptions
}
