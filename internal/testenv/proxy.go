package testenv

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections from an address of its own to a real
// server, and can cut them: an outage as a client sees one (its
// connections reset, new ones refused) without stopping a server that
// other tests share. The client under test connects to [Proxy.Addr]; the
// test's own checks connect to the server directly.
type Proxy struct {
	t      testing.TB
	target string
	addr   string

	mu       sync.Mutex
	ln       net.Listener // nil while cut
	conns    map[net.Conn]struct{}
	accepted int
	wg       sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port) on 127.0.0.1 and a port
// below the kernel's range for outgoing connections, so that no client
// takes the port while the proxy is cut. It stops when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := listenBelowEphemeral()
	if err != nil {
		t.Fatalf("testenv: proxy to %s: %v", target, err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is where clients connect: 127.0.0.1:port.
func (p *Proxy) Addr() string { return p.addr }

// Accepted is how many connections the proxy has taken so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Cut stops listening, so new connections are refused, and resets every
// open one, as a server that died would leave them.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	// Every connection closes with a reset, not a goodbye: set that on all
	// of them before closing any, as forward closes a pair's other side
	// when one side ends.
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
	}
	for c := range p.conns {
		c.Close()
	}
}

// Restore listens on the proxy's address again.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	up := p.ln != nil
	p.mu.Unlock()
	if up {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("testenv: proxy to %s: listen again on %s: %v", p.target, p.addr, err)
	}
	p.serve(ln)
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Cut
			}
			p.wg.Go(func() { p.forward(c) })
		}
	})
}

// forward copies both ways between the client c and a new connection to
// the target until either side ends or Cut closes them.
func (p *Proxy) forward(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, s) {
		c.Close()
		s.Close()
		return
	}
	defer p.untrack(c, s)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done
	c.Close()
	s.Close()
	<-done
}

// track records a forwarded pair, unless the proxy was cut meanwhile.
func (p *Proxy) track(c, s net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.accepted++
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	return true
}

func (p *Proxy) untrack(c, s net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	delete(p.conns, s)
}

// listenBelowEphemeral listens on 127.0.0.1 and a free port under the
// kernel's ip_local_port_range, where connect never picks its local
// ports.
func listenBelowEphemeral() (net.Listener, error) {
	low := ephemeralLow()
	const first = 10000
	if low <= first+100 {
		return nil, fmt.Errorf("the kernel's ephemeral ports start at %d: no room below them for a proxy", low)
	}
	var last error
	for range 50 {
		port := first + rand.IntN(low-first)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return ln, nil
		}
		last = err
	}
	return nil, errors.Join(errors.New("no free port below the ephemeral range after 50 tries"), last)
}

// ephemeralLow is the first port of the kernel's ip_local_port_range.
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	return low
}
