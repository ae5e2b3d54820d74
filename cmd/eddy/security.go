package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/asynkron/protoactor-go/remote"
	"github.com/spf13/pflag"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/nodeauth"
	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/scripting"
)

// What eddy run's flags for a shared deployment do (docs/security.md):
// who may ask the status server (--http-token-file, TLS), and what a
// pipeline script may reach (--allow-path, --allow-env, --allow-host).

// securityFlags are eddy run's flags that protect its status server and
// confine its script.
type securityFlags struct {
	tokenFile, tlsCert, tlsKey, tlsCA string
	metricsPublic                     bool
	allowPaths, allowEnv, allowHosts  []string
}

func addSecurityFlags(fl *pflag.FlagSet, f *securityFlags) {
	fl.StringVar(&f.tokenFile, "http-token-file", "", "require every request to the --http server (the web page, /status, /state, /metrics) to carry the token in `FILE` (Authorization: Bearer TOKEN; the web page asks for it once); see docs/security.md")
	fl.BoolVar(&f.metricsPublic, "http-metrics-public", false, "with --http-token-file, serve /metrics without the token (for a Prometheus that cannot send one)")
	fl.StringVar(&f.tlsCert, "http-tls-cert", "", "serve --http over HTTPS with the certificate in `FILE` (PEM; with --http-tls-key)")
	fl.StringVar(&f.tlsKey, "http-tls-key", "", "the private key of --http-tls-cert, in `FILE` (PEM)")
	fl.StringVar(&f.tlsCA, "http-tls-ca", "", "the CA certificate `FILE` (PEM) eddy status and eddy query on this machine verify the server against (default: the certificate itself)")
	fl.StringArrayVar(&f.allowPaths, "allow-path", nil, "confine the script: file: and dir: sources and sinks (dead letters too) and files URIs name must lie in `DIR`, symlinks and .. resolved; repeatable. Any --allow-* flag confines paths, variables and hosts alike: a kind not allowed by its flag allows none (docs/security.md)")
	fl.StringArrayVar(&f.allowEnv, "allow-env", nil, "confine the script: key-env may read only the environment variable `NAME`; repeatable")
	fl.StringArrayVar(&f.allowHosts, "allow-host", nil, "confine the script: URIs (http(s)://, kafka://, mysql://, cassandra://) may name only `HOST` (any port) or HOST:PORT; repeatable")
}

// confine makes every connector URI of the run (source, sinks, dead
// letters, lookups) stay within the --allow-* flags, when any is given;
// restore lifts it.
func (f securityFlags) confine() (restore func(), err error) {
	if len(f.allowPaths)+len(f.allowEnv)+len(f.allowHosts) == 0 {
		return func() {}, nil
	}
	c := connectors.Confinement{Dirs: []string{}, Env: []string{}, Hosts: []string{}}
	c.Dirs = append(c.Dirs, f.allowPaths...)
	c.Env = append(c.Env, f.allowEnv...)
	c.Hosts = append(c.Hosts, f.allowHosts...)
	restore, err = connectors.Confine(c)
	if err != nil {
		return nil, fmt.Errorf("--allow-path: %w", err)
	}
	return restore, nil
}

// checkLookups checks the URIs of the script's lookups when it loads
// (they open at the first lookup), against the confinement in
// particular.
func checkLookups(p *scripting.Pipeline) error {
	for _, l := range p.Lookups() {
		if err := connectors.Check("lookup", l.Source); err != nil {
			return fmt.Errorf("%s: lookups.%s: %w", p.Script, l.Name, err)
		}
	}
	return nil
}

// httpSecurity is what the status server serves with.
type httpSecurity struct {
	token string
	tls   *tls.Config
	// caFile is what a client on this machine verifies the certificate
	// against (--http-tls-ca, else the certificate), roots the same read
	// for the node's own calls to the others of its cluster.
	caFile string
	roots  *x509.CertPool
	public []string
}

// httpSecurity reads the token and certificate files: a file that can't
// be read, or holds no usable token or certificate, stops the run naming
// it.
func (f securityFlags) httpSecurity() (httpSecurity, error) {
	var s httpSecurity
	if f.tokenFile != "" {
		t, err := readToken("--http-token-file", f.tokenFile)
		if err != nil {
			return s, err
		}
		s.token = t
		if f.metricsPublic {
			s.public = []string{"/metrics"}
		}
	} else if f.metricsPublic {
		return s, fmt.Errorf("--http-metrics-public exempts /metrics from --http-token-file, which is not given")
	}
	switch {
	case f.tlsKey != "" && f.tlsCert == "":
		return s, fmt.Errorf("--http-tls-key %s needs --http-tls-cert, the certificate it is the key of", f.tlsKey)
	case f.tlsCert != "" && f.tlsKey == "":
		return s, fmt.Errorf("--http-tls-cert %s needs --http-tls-key, its private key", f.tlsCert)
	case f.tlsCA != "" && f.tlsCert == "":
		return s, fmt.Errorf("--http-tls-ca %s: it verifies the server's certificate, and there is no --http-tls-cert", f.tlsCA)
	case f.tlsCert == "":
		return s, nil
	}
	cert, err := loadKeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return s, err
	}
	s.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	s.caFile = f.tlsCert
	if f.tlsCA != "" {
		s.caFile = f.tlsCA
	}
	s.roots, err = readCAs("--http-tls-ca", s.caFile)
	return s, err
}

// remote is what the node's cluster remote asks of the other nodes and
// presents to them: the same token and certificate.
func (s httpSecurity) remote(log *slog.Logger) []remote.ConfigOption {
	return nodeauth.RemoteOptions(s.nodeAuth(log))
}

// nodeAuth is what the node asks of the other nodes of its cluster, and
// presents to them, on its remote and its health port: the status
// server's token and certificate.
func (s httpSecurity) nodeAuth(log *slog.Logger) nodeauth.Config {
	c := nodeauth.Config{Token: s.token, RootCAs: s.roots, Logger: log}
	if s.tls != nil {
		c.Cert = &s.tls.Certificates[0]
	}
	return c
}

// minToken is the shortest token accepted: shorter ones are guessable.
const minToken = 16

// readToken reads a token file: its content without the surrounding
// white space, at least minToken printable ASCII characters.
func readToken(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	t := strings.TrimSpace(string(b))
	for _, r := range t {
		if r <= ' ' || r > '~' {
			return "", fmt.Errorf("%s %s: the token holds %q, which an HTTP header cannot carry: want printable ASCII without spaces (such as base64)", flag, path, r)
		}
	}
	if len(t) < minToken {
		return "", fmt.Errorf("%s %s holds a token of %d characters: want at least %d, such as `head -c 32 /dev/urandom | base64`", flag, path, len(t), minToken)
	}
	return t, nil
}

// loadKeyPair reads a certificate and its key, naming the file at fault.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--http-tls-cert: %w", err)
	}
	if _, err := readCAs("--http-tls-cert", certFile); err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--http-tls-key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--http-tls-key %s (the key of --http-tls-cert %s): %w", keyFile, certFile, err)
	}
	return cert, nil
}

// readCAs reads PEM certificates to verify a server against.
func readCAs(flag, path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s %s holds no PEM certificate", flag, path)
	}
	return pool, nil
}

// listenAddr is where --http listens: a bare ":PORT" is this machine only
// (127.0.0.1); every interface takes an explicit 0.0.0.0:PORT.
func listenAddr(addr string) string {
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// guard wraps the status server's handler and listener as s asks, and
// warns when a server others can reach asks for no token.
func (s httpSecurity) guard(h http.Handler, ln net.Listener, log *slog.Logger) (http.Handler, net.Listener) {
	if s.token != "" {
		h = statusapi.Protect(h, statusapi.Auth{Token: s.token, Public: s.public, Secure: s.tls != nil})
	} else if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		log.Warn("--http serves every key of the state to whoever reaches it: give --http-token-file (docs/security.md)", "addr", a.String())
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	return h, ln
}

// scheme is the status server's URL scheme and separator.
func (s httpSecurity) scheme() string {
	if s.tls != nil {
		return "https://"
	}
	return "http://"
}

// clientFlags are eddy status's and eddy query's flags for a node that
// asks for a token or serves HTTPS.
type clientFlags struct {
	tokenFile, caFile string
}

func addClientFlags(fl *pflag.FlagSet, f *clientFlags) {
	fl.StringVar(&f.tokenFile, "http-token-file", "", "send the token in `FILE` (the node's --http-token-file; default: the one a node found on this machine registered)")
	fl.StringVar(&f.caFile, "http-tls-ca", "", "verify an HTTPS node's certificate against the CA certificates in `FILE` (PEM; default: the system's, or what a node found on this machine registered)")
}

// client is the statusapi client the flags ask for; a node found in the
// runtime directory (e, may be nil) lends its token and CA files for the
// flags not given.
func (f clientFlags) client(e *statusapi.Entry) (statusapi.Client, error) {
	tokenFile, caFile := f.tokenFile, f.caFile
	if e != nil {
		tokenFile, caFile = first(tokenFile, e.TokenFile), first(caFile, e.CAFile)
	}
	var c statusapi.Client
	if tokenFile != "" {
		t, err := readToken("--http-token-file", tokenFile)
		if err != nil {
			return c, err
		}
		c.Token = t
	}
	if caFile != "" {
		pool, err := readCAs("--http-tls-ca", caFile)
		if err != nil {
			return c, err
		}
		c.TLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	return c, nil
}
