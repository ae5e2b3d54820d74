package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/internal/reference"
	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// Two clustered nodes split a 4-partition topic: eddy status shows every
// partition once, on the node that reads it, caught up with no lag once all
// is read; eddy query, asked of either node, merges both nodes' partial
// counts into the reference answer, which neither node holds alone.
func TestClusterOnKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 4)
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	dir := genFlows(t, 40000, 2, 0)
	counts, err := reference.NetflowCountsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, dir)

	var health []string
	for range 2 {
		health = append(health, freeAddr(t))
	}
	src := "kafka://" + strings.Join(brokers, ",") + "/" + topic + "?group=" + topic + "-g"
	var logs []*bytes.Buffer
	var https []string
	for i := range 2 {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		https = append(https, freeAddr(t))
		// Without the changelog, so that this test is about routing
		// queries: partitions move only before records are produced.
		_, stderr := startRun(t, netflowScript, "--source", src, "--changelog=false", "--emit", "update",
			"--sink", "file:"+filepath.Join(t.TempDir(), "out.jsonl"), "--state", filepath.Join(t.TempDir(), "state"),
			"--trigger-interval", "100ms", "--checkpoint-interval", "500ms",
			"--cluster-port", port, "--peers", strings.Join(health, ","), "--http", https[i])
		logs = append(logs, stderr)
	}
	type part struct {
		ID       string `json:"id"`
		Lag      *int64 `json:"lag"`
		CaughtUp bool   `json:"caught_up"`
	}
	type view struct {
		Cluster string `json:"cluster"`
		Nodes   []struct {
			HTTP   string `json:"http"`
			Error  string `json:"error"`
			Status *struct {
				Partitions []part `json:"partitions"`
				Read       int64  `json:"records_read"`
			} `json:"status"`
		} `json:"nodes"`
	}
	var v view
	var last string
	check := func(cond func() bool, what string, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); ; time.Sleep(200 * time.Millisecond) {
			out, stderr, err := eddy(t, "status", "--json")
			v = view{}
			if err == nil {
				err = json.Unmarshal([]byte(out), &v)
			}
			last = fmt.Sprint(err, stderr, out)
			if err == nil && cond() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s within %v: %s\n%s\n%s", what, within, last, tailOf(logs[0]), tailOf(logs[1]))
			}
		}
	}
	split := func() bool {
		seen := map[string]bool{}
		if len(v.Nodes) != 2 {
			return false
		}
		for _, n := range v.Nodes {
			if n.Status == nil || len(n.Status.Partitions) == 0 {
				return false
			}
			for _, p := range n.Status.Partitions {
				if seen[p.ID] {
					return false
				}
				seen[p.ID] = true
			}
		}
		return len(seen) == 4
	}
	check(split, "two nodes reading two partitions each", 90*time.Second)

	produceFlows(t, brokers, topic, lines)
	_, hasLag := reflect.TypeFor[actors.PartitionStatus]().FieldByName("Lag")
	check(func() bool {
		if !split() {
			return false
		}
		var read int64
		for _, n := range v.Nodes {
			read += n.Status.Read
			for _, p := range n.Status.Partitions {
				if !p.CaughtUp || hasLag && (p.Lag == nil || *p.Lag != 0) {
					return false
				}
			}
		}
		return read == int64(len(lines))
	}, "every record read, every partition caught up with no lag", 90*time.Second)
	t.Logf("status: %s", last)
	if !hasLag {
		t.Log("actors.PartitionStatus has no Lag yet: lag not checked")
	}

	want := reference.Top(counts, 20)
	var top string
	for deadline := time.Now().Add(30 * time.Second); top != want; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster's top 20:\n%s\nwant:\n%s", top, want)
		}
		top, _, _ = eddy(t, "query", "netflow_webservers", "--http", https[1])
	}
	dev := strings.Split(top, `"`)[3]
	for _, h := range https {
		one, stderr, err := eddy(t, "query", "netflow_webservers", dev, "--http", h)
		if w := fmt.Sprintf(`{"dstdevice":%q,"count":%d}`+"\n", dev, counts[dev]); err != nil || one != w {
			t.Fatalf("eddy query %s at %s: %v %q, want %q %s", dev, h, err, one, w, stderr)
		}
		// The node's own partitions hold only part of it.
		local, _ := statusapi.Fetch(t.Context(), h, statusapi.KeyPath(dev)+"?local=1")
		if bytes.Contains(local, fmt.Appendf(nil, `"count":%d}`, counts[dev])) {
			t.Fatalf("%s alone holds the whole count of %s (%s): the partitions are not split", h, dev, local)
		}
	}
}

func readLines(t *testing.T, dir string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, bytes.Clone(sc.Bytes()))
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return lines
}

func produceFlows(t *testing.T, brokers []string, topic string, lines [][]byte) {
	t.Helper()
	testenv.Produce(t, brokers, topic, lines)
}

func tailOf(b fmt.Stringer) string {
	s := b.String()
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}
