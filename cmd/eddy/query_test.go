package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/reference"
	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// startRun starts eddy run in the background; it is interrupted when the
// test ends.
func startRun(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	run := exec.Command(eddyBin, append([]string{"run"}, args...)...)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		run.Process.Signal(syscall.SIGINT)
		run.Wait()
	})
	return run, &stderr
}

func freeAddr(t *testing.T) string { return testenv.FreeAddr(t) }

// eddy status and eddy query against a running eddy run --http: with the
// address, and found on this machine without it.
func TestStatusAndQuery(t *testing.T) {
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	if _, stderr, err := eddy(t, "status"); err == nil || !strings.Contains(stderr, "no eddy run serves status on this machine") {
		t.Fatalf("eddy status with nothing running: %v %s", err, stderr)
	}
	addr := freeAddr(t)
	_, stderr := startRun(t, netflowScript, "--source", "gen:netflow?count=0&rate=50000", "--emit", "update", "--http", addr)
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
	// The key alone with --http (as before), the pipeline and the key with
	// or without --http.
	for _, args := range [][]string{
		{"query", dev, "--http", addr},
		{"query", "netflow_webservers", dev, "--http", addr},
		{"query", "netflow_webservers", dev},
	} {
		one, stderr, err := eddy(t, args...)
		if err != nil || !strings.HasPrefix(one, `{"dstdevice":"`+dev+`","count":`) || strings.Count(one, "\n") != 1 {
			t.Fatalf("eddy %s: %v\n%s%s", strings.Join(args, " "), err, one, stderr)
		}
	}
	for _, args := range [][]string{{"query", "netflow_webservers"}, {"query", "netflow_webservers", "--http", addr}, {"query"}} {
		if out, stderr, err := eddy(t, args...); err != nil || strings.Count(out, "\n") != 20 {
			t.Fatalf("eddy %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
	}
	st, _, err := eddy(t, "status", "--json", "--http", addr)
	if err != nil || !strings.Contains(st, `"pipeline": "netflow_webservers"`) || !strings.Contains(st, `"id": "gen:netflow"`) {
		t.Fatalf("eddy status --json: %v\n%s", err, st)
	}
	for _, args := range [][]string{{"status"}, {"status", "netflow_webservers"}, {"status", "--http", addr}} {
		st, stderr, err := eddy(t, args...)
		if err != nil || !strings.Contains(st, "pipeline netflow_webservers, one node") || !strings.Contains(st, "gen:netflow") ||
			!strings.Contains(st, "CAUGHT UP") || !strings.Contains(st, "LAST CHECKPOINT") {
			t.Fatalf("eddy %s: %v\n%s%s", strings.Join(args, " "), err, st, stderr)
		}
	}
	if _, stderr, err := eddy(t, "query", "no-such-device", "--http", addr); err == nil || !strings.Contains(stderr, `no state for key "no-such-device"`) {
		t.Fatalf("query of an unknown key: %v %s", err, stderr)
	}
	if _, stderr, err := eddy(t, "query", "tshark_ips", "x"); err == nil || !strings.Contains(stderr, `no eddy run of pipeline "tshark_ips"`) || !strings.Contains(stderr, "running: netflow_webservers") {
		t.Fatalf("query of a pipeline not running: %v %s", err, stderr)
	}
	if _, stderr, err := eddy(t, "query", "tshark_ips", "x", "--http", addr); err == nil || !strings.Contains(stderr, `runs pipeline "netflow_webservers", not "tshark_ips"`) {
		t.Fatalf("query of another pipeline at --http: %v %s", err, stderr)
	}
}

type clusterView struct {
	Cluster string `json:"cluster"`
	Nodes   []struct {
		ID, HTTP string
		Error    string
		Status   *struct {
			Partitions []struct {
				ID       string `json:"id"`
				CaughtUp bool   `json:"caught_up"`
			} `json:"partitions"`
			Read int64 `json:"records_read"`
		}
	} `json:"nodes"`
}

// Two nodes of one pipeline on this machine find each other with no
// --peers; eddy status and eddy query, without flags, show and merge
// both. Each reads the same directory, so the merged counts are twice the
// reference. A node killed with kill -9 leaves the view.
func TestClusterOnOneMachine(t *testing.T) {
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	dir := genFlows(t, 20000, 2, 0)
	counts, err := reference.NetflowCountsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var runs []*exec.Cmd
	var logs []*bytes.Buffer
	for range 2 {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		run, stderr := startRun(t, netflowScript, "--source", "dir:"+dir, "--emit", "update", "--sink", "file:"+filepath.Join(t.TempDir(), "out.jsonl"), "--cluster-port", port)
		runs, logs = append(runs, run), append(logs, stderr)
	}
	status := func() (clusterView, string) {
		out, stderr, err := eddy(t, "status", "netflow_webservers", "--json")
		var v clusterView
		if err == nil {
			err = json.Unmarshal([]byte(out), &v)
		}
		return v, fmt.Sprint(err, stderr, out)
	}
	var v clusterView
	var last string
	ready := func() bool {
		if len(v.Nodes) != 2 {
			return false
		}
		for _, n := range v.Nodes {
			if n.Status == nil || len(n.Status.Partitions) != 1 || !n.Status.Partitions[0].CaughtUp || n.Status.Read != 20000 {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(time.Minute); !ready(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster's status within a minute: %s\n%s\n%s", last, logs[0], logs[1])
		}
		v, last = status()
	}
	if v.Cluster != "eddy/netflow_webservers" || v.Nodes[0].HTTP == "" || v.Nodes[0].HTTP == v.Nodes[1].HTTP {
		t.Fatalf("status: %s", last)
	}
	table, stderr, err := eddy(t, "status")
	if err != nil || !strings.Contains(table, "cluster eddy/netflow_webservers: 2 nodes") || strings.Count(table, "dir:"+dir) != 2 || !strings.Contains(table, "(this)") {
		t.Fatalf("eddy status: %v\n%s%s", err, table, stderr)
	}
	t.Logf("eddy status:\n%s", table)

	top, stderr, err := eddy(t, "query", "netflow_webservers")
	if err != nil || strings.Count(top, "\n") != 20 {
		t.Fatalf("eddy query: %v\n%s%s", err, top, stderr)
	}
	doubled := map[string]int64{}
	for k, n := range counts {
		doubled[k] = 2 * n
	}
	if want := reference.Top(doubled, 20); top != want {
		t.Fatalf("merged top 20:\n%s\nwant:\n%s", top, want)
	}
	dev := strings.Split(top, `"`)[3]
	one, stderr, err := eddy(t, "query", "netflow_webservers", dev)
	if want := fmt.Sprintf(`{"dstdevice":%q,"count":%d}`+"\n", dev, 2*counts[dev]); err != nil || one != want {
		t.Fatalf("eddy query %s: %v %q, want %q %s", dev, err, one, want, stderr)
	}

	// kill -9 one node: the other drops it within a few polls, its entry
	// in the runtime directory is skipped, and the answers are the
	// survivor's alone.
	runs[1].Process.Kill()
	runs[1].Wait()
	killed := time.Now()
	for {
		v, last = status()
		if len(v.Nodes) == 1 && v.Nodes[0].Error == "" {
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("the killed node is still in the cluster's status after 20s: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the killed node left the status %v after kill -9", time.Since(killed).Round(time.Millisecond))
	one, stderr, err = eddy(t, "query", "netflow_webservers", dev)
	if want := fmt.Sprintf(`{"dstdevice":%q,"count":%d}`+"\n", dev, counts[dev]); err != nil || one != want {
		t.Fatalf("eddy query %s after a kill: %v %q, want %q %s", dev, err, one, want, stderr)
	}
	if entries, err := statusapi.Running(""); err != nil || len(entries) != 1 {
		t.Fatalf("registered after a kill: %v %v", entries, err)
	}
	if files, _ := filepath.Glob(filepath.Join(os.Getenv(statusapi.RuntimeDirEnv), "*")); len(files) != 1 {
		t.Fatalf("runtime dir after a kill: %v", files)
	}

	// The survivor leaves cleanly: its entry goes with it.
	runs[0].Process.Signal(syscall.SIGINT)
	if err := runs[0].Wait(); err != nil {
		t.Fatalf("the survivor's exit: %v\n%s", err, logs[0])
	}
	if files, _ := filepath.Glob(filepath.Join(os.Getenv(statusapi.RuntimeDirEnv), "*")); len(files) != 0 {
		t.Fatalf("runtime dir after the last exit: %v", files)
	}
}
