package main

import (
	"bytes"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// eddy status and eddy query against a running eddy run --http.
func TestStatusAndQuery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	run := exec.Command(eddyBin, "run", netflowScript, "--source", "gen:netflow?count=0&rate=50000", "--emit", "update", "--http", addr)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		run.Process.Signal(syscall.SIGINT)
		run.Wait()
	}()
	var top string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out, _, err := eddy(t, "query", "--http", addr); err == nil && strings.Count(out, "\n") == 20 {
			top = out
			break
		}
	}
	if top == "" {
		t.Fatalf("no top 20 from eddy query within a minute\n%s", stderr.String())
	}
	first := strings.SplitN(top, "\n", 2)[0]
	dev := strings.Split(first, `"`)[3]
	one, _, err := eddy(t, "query", dev, "--http", addr)
	if err != nil || !strings.HasPrefix(one, `{"dstdevice":"`+dev+`","count":`) {
		t.Fatalf("eddy query %s: %v\n%s", dev, err, one)
	}
	st, _, err := eddy(t, "status", "--http", addr)
	if err != nil || !strings.Contains(st, `"pipeline": "netflow_webservers"`) || !strings.Contains(st, `"id": "gen:netflow"`) {
		t.Fatalf("eddy status: %v\n%s", err, st)
	}
	if _, stderr, err := eddy(t, "query", "no-such-device", "--http", addr); err == nil || !strings.Contains(stderr, `no state for key "no-such-device"`) {
		t.Fatalf("query of an unknown key: %v %s", err, stderr)
	}
}
