package cluster

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/nodeauth"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// healthPeer serves a health answer of cluster "c" with auth on a port of
// its own and returns that endpoint.
func healthPeer(t *testing.T, auth nodeauth.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveHealth(ln, func() healthAnswer { return healthAnswer{ID: "peer.1", ClusterName: "c"} }, auth)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// poller is a provider of cluster "c" polling peer with auth.
func poller(peer string, auth nodeauth.Config) *healthProvider {
	p := newHealthProvider("c", []string{peer}, 250*time.Millisecond, 3*time.Second, nil, nil, nil, nil)
	p.secure(auth)
	return p
}

// With --http-token-file, a node's health port answers only polls that
// carry the token, over TLS with a certificate; a refused poll is a peer
// that does not answer (dropped after DownAfter, never reported gone),
// not a member.
func TestHealthPortAsksForTheToken(t *testing.T) {
	const token, other = "cluster-token-0123456789", "another-token-0123456789"
	cert, pool := testenv.SelfSigned(t)
	cases := []struct {
		name         string
		served, poll nodeauth.Config
		ok           bool
	}{
		{"no token asked, none sent", nodeauth.Config{}, nodeauth.Config{}, true},
		{"the token", nodeauth.Config{Token: token}, nodeauth.Config{Token: token}, true},
		{"no token", nodeauth.Config{Token: token}, nodeauth.Config{}, false},
		{"another token", nodeauth.Config{Token: token}, nodeauth.Config{Token: other}, false},
		{"TLS and the token", nodeauth.Config{Token: token, Cert: &cert}, nodeauth.Config{Token: token, Cert: &cert, RootCAs: pool}, true},
		{"TLS, a certificate not trusted", nodeauth.Config{Token: token, Cert: &cert}, nodeauth.Config{Token: token, Cert: &cert}, false},
		{"plain HTTP to a TLS port", nodeauth.Config{Token: token, Cert: &cert}, nodeauth.Config{Token: token}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			peer := healthPeer(t, c.served)
			p := poller(peer, c.poll)
			r := p.pollAll()[0]
			if r.ok != c.ok || r.refused {
				t.Fatalf("poll: ok %v refused %v (%+v), want ok %v and not refused", r.ok, r.refused, r.a, c.ok)
			}
			members, gone := p.judge([]polled{r}, time.Now())
			if want := map[bool]int{true: 1, false: 0}[c.ok]; len(members) != want || len(gone) != 0 {
				t.Fatalf("judged %d members and %d gone, want %d and none", len(members), len(gone), want)
			}
		})
	}

	// What a client without the token gets: 401, naming the flag.
	peer := healthPeer(t, nodeauth.Config{Token: token})
	resp, err := http.Get("http://" + peer + "/_health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /_health without the token: %s, want 401", resp.Status)
	}
}
