package statusapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/actors/cluster"
	"github.com/eddy-stream/eddy/actors/cluster/clustertest"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// engine is a fake node: word counts over one partition.
type engine = clustertest.Words

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestSingleNode(t *testing.T) {
	e := &engine{Partition: "kafka:words/0", Counts: map[string]int{"the": 3, "cat": 1}}
	srv := httptest.NewServer(New(e, nil))
	defer srv.Close()
	if code, body := get(t, srv, "/status"); code != 200 || !strings.Contains(body, `"pipeline": "wordcount"`) || strings.Contains(body, `"nodes"`) {
		t.Fatalf("/status: %d %s", code, body)
	}
	if code, body := get(t, srv, "/state"); code != 200 || body != `{"word":"cat","count":1}`+"\n"+`{"word":"the","count":3}`+"\n" {
		t.Fatalf("/state: %d %q", code, body)
	}
	if code, body := get(t, srv, "/state/dog"); code != 404 || !strings.Contains(body, `no state for key "dog"`) {
		t.Fatalf("/state/dog: %d %s", code, body)
	}
	e.NoTable = true
	if code, body := get(t, srv, "/state"); code != 404 || !strings.Contains(body, "no result table") {
		t.Fatalf("/state without an aggregate: %d %s", code, body)
	}
}

// A /state answer is whole or says it isn't: 503 naming the partitions it
// would miss, or with partial=1 the rows there are and Eddy-Partial.
func TestStateIncomplete(t *testing.T) {
	whole := `{"word":"cat","count":1}` + "\n" + `{"word":"the","count":3}` + "\n"
	for _, tc := range []struct {
		name        string
		engine      engine
		path        string
		code        int
		bodyHas     string // the whole body when code is 200
		partial     string // Eddy-Partial-Reason
		errContains string // FetchState's error
	}{
		{name: "complete", engine: engine{All: []string{"kafka:words/0"}}, path: "/state", code: 200, bodyHas: whole},
		{name: "files: no list of partitions", engine: engine{}, path: "/state", code: 200, bodyHas: whole},
		{name: "restoring", engine: engine{Restoring: true, Restored: 120000, ToRestore: 1000000}, path: "/state", code: 503,
			bodyHas: "partition kafka:words/0 is restoring (120000 of 1000000 changes)", errContains: "is restoring"},
		{name: "restoring, one key", engine: engine{Restoring: true}, path: "/state/the", code: 503,
			bodyHas: "partition kafka:words/0 is restoring", errContains: "is restoring"},
		{name: "no owner", engine: engine{All: []string{"kafka:words/0", "kafka:words/1", "kafka:words/2"}}, path: "/state", code: 503,
			bodyHas: "partitions kafka:words/1, kafka:words/2 have no owner in the cluster (a rebalance is under way)", errContains: "have no owner"},
		{name: "no owner, partial", engine: engine{All: []string{"kafka:words/0", "kafka:words/1"}}, path: "/state?partial=1", code: 200,
			bodyHas: whole, partial: "the answer is incomplete: partition kafka:words/1 has no owner in the cluster (a rebalance is under way)"},
		{name: "restoring, partial", engine: engine{Restoring: true}, path: "/state?partial=1", code: 200,
			partial: "partition kafka:words/0 is restoring"},
		{name: "partial=0 is not partial", engine: engine{Restoring: true}, path: "/state?partial=0", code: 503,
			bodyHas: "is restoring", errContains: "is restoring"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.engine
			e.Partition, e.Counts = "kafka:words/0", map[string]int{"the": 3, "cat": 1}
			srv := httptest.NewServer(New(&e, nil))
			defer srv.Close()
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			switch {
			case resp.StatusCode != tc.code:
				t.Fatalf("%s: %d %q, want %d", tc.path, resp.StatusCode, body, tc.code)
			case tc.code == 200 && body != tc.bodyHas:
				t.Fatalf("%s: %q, want %q", tc.path, body, tc.bodyHas)
			case !strings.Contains(body, tc.bodyHas):
				t.Fatalf("%s: %q, want it to contain %q", tc.path, body, tc.bodyHas)
			case (resp.Header.Get(PartialHeader) == "true") != (tc.partial != ""):
				t.Fatalf("%s: %s: %q", tc.path, PartialHeader, resp.Header.Get(PartialHeader))
			case !strings.Contains(resp.Header.Get(PartialReasonHeader), tc.partial):
				t.Fatalf("%s: %s: %q, want %q", tc.path, PartialReasonHeader, resp.Header.Get(PartialReasonHeader), tc.partial)
			}
			// The client: a refusal says why, a partial answer comes with
			// its reason.
			_, reason, err := FetchState(context.Background(), srv.URL, tc.path)
			var se *StatusError
			switch {
			case tc.errContains != "" && (!errors.As(err, &se) || !strings.Contains(se.Incomplete, tc.errContains)):
				t.Fatalf("FetchState %s: %v, want a StatusError saying %q", tc.path, err, tc.errContains)
			case tc.errContains == "" && (err != nil || !strings.Contains(reason, tc.partial) || (reason == "") != (tc.partial == "")):
				t.Fatalf("FetchState %s: %q %v, want reason %q", tc.path, reason, err, tc.partial)
			}
		})
	}
}

// peerEnv, when set, makes the test binary a cluster node of its own: a
// second node in one process races with the first over grpc's process-wide
// logger (see cluster.Join), so TestClusteredNodes runs its peer this way.
const peerEnv = "EDDY_STATUSAPI_TEST_PEER"

// peerSpec is what the peer process joins with.
type peerSpec struct {
	Config cluster.Config
	Engine clustertest.Words
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(peerEnv); spec != "" {
		os.Exit(runPeer(spec))
	}
	os.Exit(m.Run())
}

// runPeer joins the cluster, says "joined" on stdout, and leaves when its
// stdin closes (the test is done with it, or the test process died).
func runPeer(spec string) int {
	var ps peerSpec
	if err := json.Unmarshal([]byte(spec), &ps); err != nil {
		fmt.Fprintln(os.Stderr, "peer spec:", err)
		return 2
	}
	n, err := cluster.Join(context.Background(), ps.Config, &ps.Engine)
	if err != nil {
		fmt.Fprintln(os.Stderr, "join:", err)
		return 1
	}
	fmt.Println("joined")
	_, _ = io.Copy(io.Discard, os.Stdin)
	n.Leave()
	return 0
}

// startPeer runs a node in a child process; closing the returned stdin
// makes it leave the cluster and exit, which wait waits for.
func startPeer(t *testing.T, spec peerSpec) (leave func()) {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), peerEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		line := make([]byte, len("joined\n"))
		_, err := io.ReadFull(stdout, line)
		if err == nil && string(line) != "joined\n" {
			err = fmt.Errorf("peer said %q", line)
		}
		if err != nil {
			exited <- err
			return
		}
		exited <- nil
		exited <- cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			_ = cmd.Process.Kill()
			t.Fatalf("the peer node did not join: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the peer node did not join within 30s")
	}
	var once sync.Once
	leave = func() {
		once.Do(func() {
			stdin.Close()
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("the peer node: %v", err)
				}
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				t.Error("the peer node did not leave within 20s")
			}
		})
	}
	t.Cleanup(leave)
	return leave
}

func TestClusteredNodes(t *testing.T) {
	// "the" was counted on both nodes: its answer is the sum. The first
	// node runs here, the second in a process of its own.
	all := []string{"kafka:words/0", "kafka:words/1"}
	engines := []*engine{
		{Partition: "kafka:words/0", Counts: map[string]int{"the": 3, "cat": 1}, All: all},
		{Partition: "kafka:words/1", Counts: map[string]int{"the": 4, "dog": 2}, All: all},
	}
	var ports []int
	var peers, https []string
	for range engines {
		addr := testenv.FreeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		p, err := strconv.Atoi(port)
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
		peers = append(peers, addr)
		https = append(https, testenv.FreeAddr(t))
	}
	config := func(i int) cluster.Config {
		return cluster.Config{
			Name: cluster.Name("wordcount", "eddy.wordcount"), AutoManagePort: ports[i], Peers: peers,
			HTTP: https[i], RefreshTTL: 300 * time.Millisecond, Timeout: 2 * time.Second,
		}
	}
	leavePeer := startPeer(t, peerSpec{Config: config(1), Engine: *engines[1]})
	node, err := cluster.Join(context.Background(), config(0), engines[0])
	if err != nil {
		t.Fatal(err)
	}
	defer node.Leave()
	for deadline := time.Now().Add(time.Minute); len(node.Members()) != 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("members: %v", node.Members())
		}
	}
	srv := httptest.NewServer(New(engines[0], node))
	defer srv.Close()

	code, body := get(t, srv, "/status")
	var st cluster.Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status: %d %v %s", code, err, body)
	}
	var parts, gotHTTP []string
	for _, n := range st.Nodes {
		parts = append(parts, n.Status.Partitions[0].ID)
		gotHTTP = append(gotHTTP, n.HTTP)
	}
	slices.Sort(parts)
	slices.Sort(gotHTTP)
	slices.Sort(https)
	if st.Pipeline != "wordcount" || st.Cluster != "eddy/wordcount/eddy.wordcount" ||
		!slices.Equal(parts, []string{"kafka:words/0", "kafka:words/1"}) || !slices.Equal(gotHTTP, https) {
		t.Fatalf("/status: %s", body)
	}
	if code, body := get(t, srv, "/status?local=1"); code != 200 || strings.Contains(body, `"nodes"`) || !strings.Contains(body, "kafka:words/0") || strings.Contains(body, "kafka:words/1") {
		t.Fatalf("/status?local=1: %d %s", code, body)
	}
	if code, body := get(t, srv, "/state"); code != 200 || body != `{"word":"cat","count":1}`+"\n"+`{"word":"dog","count":2}`+"\n"+`{"word":"the","count":7}`+"\n" {
		t.Fatalf("/state: %d %q", code, body)
	}
	if code, body := get(t, srv, "/state/the"); code != 200 || body != `{"word":"the","count":7}`+"\n" {
		t.Fatalf("/state/the: %d %q", code, body)
	}
	if code, body := get(t, srv, "/state/the?local=1"); code != 200 || body != `{"word":"the","count":3}`+"\n" {
		t.Fatalf("/state/the?local=1: %d %q", code, body)
	}
	if code, body := get(t, srv, "/state/cow"); code != 404 {
		t.Fatalf("/state/cow: %d %q", code, body)
	}

	// The other node leaves: within a few polls it is gone, and until
	// Kafka hands its partition to this node the answer misses it: 503
	// naming it, or the partial rows when asked for them.
	leavePeer()
	for deadline := time.Now().Add(time.Minute); len(node.Members()) != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("members after a leave: %v", node.Members())
		}
	}
	if code, body := get(t, srv, "/state/the"); code != 503 || !strings.Contains(body, "partition kafka:words/1 has no owner in the cluster") {
		t.Fatalf("/state/the after a leave: %d %q", code, body)
	}
	resp, err := http.Get(srv.URL + "/state/the?partial=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"word":"the","count":3}`+"\n" || resp.Header.Get(PartialHeader) != "true" ||
		!strings.Contains(resp.Header.Get(PartialReasonHeader), "kafka:words/1 has no owner") {
		t.Fatalf("/state/the?partial=1 after a leave: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	if code, body := get(t, srv, "/state/the?local=1"); code != 200 || body != `{"word":"the","count":3}`+"\n" {
		t.Fatalf("/state/the?local=1 after a leave: %d %q", code, body)
	}
}

func TestRegistry(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(RuntimeDirEnv, dir)
	if _, _, err := Find(""); err == nil || !strings.Contains(err.Error(), "no eddy run") {
		t.Fatalf("find in an empty dir: %v", err)
	}
	remove, err := Register(Entry{Pipeline: "netflow/top", HTTP: "127.0.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	addrs, name, err := Find("")
	if err != nil || name != "netflow/top" || !slices.Equal(addrs, []string{"127.0.0.1:8080"}) {
		t.Fatalf("find: %v %q %v", addrs, name, err)
	}
	if _, _, err := Find("tshark"); err == nil || !strings.Contains(err.Error(), "running: netflow/top") {
		t.Fatalf("find another pipeline: %v", err)
	}

	// An entry of a process that is gone is skipped and removed.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := Register(Entry{Pipeline: "tshark", HTTP: "127.0.0.1:8081", PID: dead.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	if entries, err := Running(""); err != nil || len(entries) != 1 || entries[0].Pipeline != "netflow/top" {
		t.Fatalf("running: %v %v", entries, err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 1 {
		t.Fatalf("stale entry not removed: %v", files)
	}

	// Two pipelines: name one.
	r2, err := Register(Entry{Pipeline: "tshark", HTTP: "127.0.0.1:8082", PID: os.Getppid()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Find(""); err == nil || !strings.Contains(err.Error(), "netflow/top, tshark") {
		t.Fatalf("find with two pipelines: %v", err)
	}
	if addrs, _, err := Find("tshark"); err != nil || !slices.Equal(addrs, []string{"127.0.0.1:8082"}) {
		t.Fatalf("find tshark: %v %v", addrs, err)
	}
	r2()
	remove()
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Fatalf("left behind: %v", files)
	}
}

func TestFetchErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Fetch(context.Background(), addr, "/status"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("nothing there: %v", err)
	}
	srv := httptest.NewServer(New(&engine{Partition: "p"}, nil))
	defer srv.Close()
	_, err = Fetch(context.Background(), srv.URL, "/state/x")
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("404: %v", err)
	}
}
