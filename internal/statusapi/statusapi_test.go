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

func TestClusteredNodes(t *testing.T) {
	// "the" was counted on both nodes: its answer is the sum.
	engines := []*engine{
		{Partition: "kafka:words/0", Counts: map[string]int{"the": 3, "cat": 1}},
		{Partition: "kafka:words/1", Counts: map[string]int{"the": 4, "dog": 2}},
	}
	var ports []int
	for range engines {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
	peers := []string{fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])}
	nodes := make([]*cluster.Node, len(engines))
	errs := make([]error, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = cluster.Join(context.Background(), cluster.Config{
				Name: cluster.Name("wordcount", "eddy.wordcount"), AutoManagePort: ports[i], Peers: peers,
				HTTP: "127.0.0.1:" + strconv.Itoa(9000+i), RefreshTTL: 300 * time.Millisecond, Timeout: 2 * time.Second,
			}, e)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, n := range nodes {
			go n.Leave()
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); len(nodes[0].Members()) != 2 || len(nodes[1].Members()) != 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("members: %v, %v", nodes[0].Members(), nodes[1].Members())
		}
	}
	srv := httptest.NewServer(New(engines[0], nodes[0]))
	defer srv.Close()

	code, body := get(t, srv, "/status")
	var st cluster.Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status: %d %v %s", code, err, body)
	}
	var parts, https []string
	for _, n := range st.Nodes {
		parts = append(parts, n.Status.Partitions[0].ID)
		https = append(https, n.HTTP)
	}
	slices.Sort(parts)
	slices.Sort(https)
	if st.Pipeline != "wordcount" || st.Cluster != "eddy/wordcount/eddy.wordcount" ||
		!slices.Equal(parts, []string{"kafka:words/0", "kafka:words/1"}) || !slices.Equal(https, []string{"127.0.0.1:9000", "127.0.0.1:9001"}) {
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

	// The other node leaves: within a few polls the answers are this
	// node's alone again.
	nodes[1].Leave()
	for deadline := time.Now().Add(5 * time.Second); len(nodes[0].Members()) != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("members after a leave: %v", nodes[0].Members())
		}
	}
	if code, body := get(t, srv, "/state/the"); code != 200 || body != `{"word":"the","count":3}`+"\n" {
		t.Fatalf("/state/the after a leave: %d %q", code, body)
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
