// Package nodeauth makes the remote that carries messages between the
// nodes of a cluster (protoactor-go's remote, over gRPC) ask every call
// for the cluster's token, and speak TLS when the nodes have a
// certificate: the same token and certificate as their status servers
// (eddy run --http-token-file, --http-tls-cert), so a node's state is no
// easier to read through its remote port than through its HTTP one. The
// health ports the nodes poll for membership ask and present the same
// (Guard, ServerTLS, Client).
package nodeauth

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Config is what a node's remote asks and presents.
type Config struct {
	// Token is the secret every call carries and every call must carry;
	// "" asks for none.
	Token string
	// Cert, when set, makes the remote serve TLS with it; RootCAs is what
	// a node verifies the others' certificates against (nil: the
	// system's).
	Cert    *tls.Certificate
	RootCAs *x509.CertPool
	// Logger is told of refused calls (at most one line a minute): the
	// caller sees only that the node does not answer.
	Logger *slog.Logger
}

// RemoteOptions are the remote's options for c: none when c asks for
// nothing, so the remote stays as protoactor configures it.
func RemoteOptions(c Config) []remote.ConfigOption {
	if c.Token == "" && c.Cert == nil {
		return nil
	}
	var server []grpc.ServerOption
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if c.Cert != nil {
		server = append(server, grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*c.Cert}})))
		dial[0] = grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.RootCAs}))
	}
	if c.Token != "" {
		check := c.checker()
		server = append(server, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}), grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}))
		dial = append(dial, grpc.WithPerRPCCredentials(bearer{token: c.Token, tls: c.Cert != nil}))
	}
	return []remote.ConfigOption{remote.WithServerOptions(server...), remote.WithDialOptions(dial...)}
}

// checker returns the check of each call: refused without the token.
func (c Config) checker() func(ctx context.Context) error {
	var lastLog atomic.Int64
	return func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		for _, v := range md.Get("authorization") {
			if got, ok := strings.CutPrefix(v, "Bearer "); ok && subtle.ConstantTimeCompare([]byte(got), []byte(c.Token)) == 1 {
				return nil
			}
		}
		if now := time.Now().Unix(); c.Logger != nil && now-lastLog.Load() >= 60 {
			lastLog.Store(now)
			from := "?"
			if p, ok := peer.FromContext(ctx); ok {
				from = p.Addr.String()
			}
			c.Logger.Warn("refused a cluster call without this node's token: do all nodes share --http-token-file?", "from", from)
		}
		return status.Error(codes.Unauthenticated, "eddy cluster: this node needs the cluster's token (--http-token-file)")
	}
}

// bearer sends the token with every call.
type bearer struct {
	token string
	tls   bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is false without TLS, where the token crosses
// in the clear (on one machine's loopback, or a network the operator
// trusts).
func (b bearer) RequireTransportSecurity() bool { return b.tls }

// The health ports the nodes poll to find one another (plain HTTP, not the
// remote) carry the same token and TLS: a health answer names a node's
// member id, cluster address and Kafka group member, and a node believes
// what it is told there (it admits the member, renews its own id when
// told it was dropped, and removes a gone member from the Kafka group on
// its behalf), so an unauthenticated answer could inject members or have
// the nodes evict another's group member.

// Scheme is how a node's health port is reached: https:// with a
// certificate, else http://.
func (c Config) Scheme() string {
	if c.Cert != nil {
		return "https://"
	}
	return "http://"
}

// Guard wraps a health port's handler: without a token configured it is
// h; with one, a request without "Authorization: Bearer TOKEN" is
// answered 401 (and logged at most once a minute).
func (c Config) Guard(h http.Handler) http.Handler {
	if c.Token == "" {
		return h
	}
	var lastLog atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), []byte(c.Token)) == 1 {
			h.ServeHTTP(w, r)
			return
		}
		if now := time.Now().Unix(); c.Logger != nil && now-lastLog.Load() >= 60 {
			lastLog.Store(now)
			c.Logger.Warn("refused a health poll without this node's token: do all nodes share --http-token-file?", "from", r.RemoteAddr)
		}
		http.Error(w, "eddy cluster: this node needs the cluster's token (--http-token-file)", http.StatusUnauthorized)
	})
}

// ServerTLS is the health port's TLS configuration, nil without a
// certificate.
func (c Config) ServerTLS() *tls.Config {
	if c.Cert == nil {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*c.Cert}}
}

// Client makes base, the transport of a node's health polls, verify the
// others' certificates against RootCAs (with a certificate) and send the
// token (with one).
func (c Config) Client(base *http.Transport) http.RoundTripper {
	if c.Cert != nil {
		base.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.RootCAs}
	}
	if c.Token == "" {
		return base
	}
	return withToken{token: c.Token, next: base}
}

// withToken adds the token to every request it carries.
type withToken struct {
	token string
	next  http.RoundTripper
}

func (t withToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.next.RoundTrip(r)
}
