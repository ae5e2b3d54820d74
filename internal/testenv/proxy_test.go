package testenv

import (
	"bufio"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// echoServer answers each line with the same line, until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line on c and reads it back.
func roundTrip(c net.Conn, r *bufio.Reader) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err == nil && line != "ping\n" {
		err = errors.New("echo answered " + line)
	}
	return err
}

// The proxy forwards; cut, it refuses new connections and resets open
// ones; restored, it forwards again on the same address.
func TestProxyCutAndRestore(t *testing.T) {
	p := NewProxy(t, echoServer(t))
	dial := func() (net.Conn, *bufio.Reader, error) {
		c, err := net.DialTimeout("tcp", p.Addr(), 10*time.Second)
		if err != nil {
			return nil, nil, err
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c), nil
	}
	open, r, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(open, r); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	p.Cut()
	if err := roundTrip(open, r); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("an open connection after the cut: %v, want a reset", err)
	}
	if _, _, err := dial(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a new connection after the cut: %v, want refused", err)
	}

	p.Restore()
	c, r, err := dial()
	if err != nil {
		t.Fatalf("after the restore: %v", err)
	}
	if err := roundTrip(c, r); err != nil {
		t.Fatalf("through the restored proxy: %v", err)
	}
	if n := p.Accepted(); n != 2 {
		t.Fatalf("the proxy counted %d connections, want 2", n)
	}
}
