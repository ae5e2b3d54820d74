package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/internal/testenv"
)

const countIDsScript = `return {
  name = "count_ids",
  parse = eddy.json { id = "string" },
  key = "id",
  aggregate = { count = eddy.count() },
  emit = "update",
}
`

// A node that takes a partition over with no local state restores it from
// the changelog before the partition is in its result table. Meanwhile
// GET /state and eddy query refuse, naming the partition (status shows it
// restoring); eddy query --partial prints what there is and says so. Every
// answer given as whole is whole: the partition's every key.
func TestQueryWhileRestoring(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	// Enough keys that building the partition's state takes seconds
	// (docs/cluster.md: a million keys take about 9 s on 2 cores).
	const keys = 300000
	values := make([][]byte, keys)
	for i := range values {
		values[i] = fmt.Appendf(nil, `{"id":"id%07d"}`, i)
	}
	testenv.Produce(t, brokers, topic, values)
	script := filepath.Join(t.TempDir(), "count_ids.lua")
	writeFile(t, script, countIDsScript)
	part, group := "kafka:"+topic+"/0", topic+"-g"
	deleteChangelogAtEnd(t, brokers, kafka.ChangelogTopic(group, topic))
	run := func(http string) *proc {
		return startEddy(t, "run", script, "--source", "kafka://"+strings.Join(brokers, ",")+"/"+topic+"?group="+group,
			"--state", filepath.Join(t.TempDir(), "state"), "--http", http, "--sink", "file:"+filepath.Join(t.TempDir(), "out.jsonl"),
			"--trigger-interval", "100ms", "--checkpoint-interval", "500ms")
	}

	// The first node counts every id, checkpoints them all (to its store
	// and the changelog: a checkpoint begun once its table has every id),
	// then stops.
	first := freeAddr(t)
	a := run(first)
	waitStatus(t, a, first, "every id read", func(st actors.Status) bool { return st.Read == keys })
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(time.Minute); ; <-tick.C {
		if code, body := httpGet(t, "http://"+first+"/state"); code == http.StatusOK && strings.Count(body, "\n") == keys {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first node's table lacks ids a minute after it read them all:\n%s", a.stderr())
		}
	}
	var counted uint64
	if st, err := localStatus(t, first); err == nil && st.Checkpoint != nil {
		counted = st.Checkpoint.ID
	}
	waitStatus(t, a, first, "a checkpoint of every id", func(st actors.Status) bool {
		return st.Checkpoint != nil && st.Checkpoint.ID >= counted+2
	})
	if code := a.waitExit(t, a.signal(t, syscall.SIGINT), time.Minute); code != 0 {
		t.Fatalf("the first node stopped with %d:\n%s", code, a.stderr())
	}

	// The second starts empty: it restores the partition from the
	// changelog.
	second := freeAddr(t)
	b := run(second)
	var sawRestoring, refused, cliRefused, cliPartial bool
	deadline := time.Now().Add(2 * time.Minute)
	tick.Reset(100 * time.Millisecond)
	var code int
	var body string
	for ; ; <-tick.C {
		if time.Now().After(deadline) {
			st, _ := localStatus(t, second)
			t.Fatalf("no whole answer within 2 minutes (restoring seen: %v, refused: %v); the last: %d %.300s; status %+v\n%s", sawRestoring, refused, code, body, st, b.stderr())
		}
		if st, err := localStatus(t, second); err == nil && len(st.Partitions) == 1 && st.Partitions[0].Restoring {
			sawRestoring = true
		}
		code, body = httpGet(t, "http://"+second+"/state")
		if code == http.StatusOK {
			if n := strings.Count(body, "\n"); n != keys {
				st, _ := localStatus(t, second)
				t.Fatalf("GET /state answered 200 with %d rows of %d (restoring seen: %v; status now %+v):\n%.200s\n--- first node:\n%s\n--- second node:\n%s", n, keys, sawRestoring, st, body, a.stderr(), b.stderr())
			}
			break
		}
		// Before the group assigns the partition, no one owns it; then
		// it restores, then its shards build their state.
		naming := strings.Contains(body, "partition "+part+" is restoring (") || strings.Contains(body, "partition "+part+" is starting")
		if code != http.StatusServiceUnavailable || !naming {
			continue
		}
		refused = true
		if !cliRefused {
			// The window can close meanwhile: then eddy query answers
			// whole.
			out, stderr, err := eddy(t, "query", "count_ids", "--http", second)
			switch {
			case err != nil && strings.Contains(stderr, part) && strings.Contains(stderr, "eddy query --partial"):
				cliRefused = true
			case err != nil || strings.Count(out, "\n") != keys:
				t.Fatalf("eddy query while restoring: %v, %d rows\n%s\n--- second node:\n%s", err, strings.Count(out, "\n"), stderr, b.stderr())
			}
		}
		if !cliPartial {
			out, stderr, err := eddy(t, "query", "count_ids", "--http", second, "--partial")
			switch {
			case err != nil:
				t.Fatalf("eddy query --partial while restoring: %v\n%s\n--- second node:\n%s", err, stderr, b.stderr())
			case strings.Contains(stderr, "a partial answer: ") && strings.Contains(stderr, part):
				cliPartial = true
				t.Logf("eddy query --partial: %d rows; %s", strings.Count(out, "\n"), strings.TrimSpace(stderr))
			case strings.Count(out, "\n") != keys:
				t.Fatalf("eddy query --partial answered %d rows of %d without saying they are partial\n--- second node:\n%s", strings.Count(out, "\n"), keys, b.stderr())
			}
		}
	}
	if !sawRestoring || !refused {
		t.Fatalf("the restore was not observed (status showed restoring: %v; /state refused naming %s: %v): make the state bigger\n--- second node:\n%s", sawRestoring, part, refused, b.stderr())
	}
	t.Logf("while the partition restored: eddy query refused: %v, eddy query --partial said so: %v", cliRefused, cliPartial)
}

// deleteChangelogAtEnd deletes the changelog topic the nodes create once
// the test (and its nodes, stopped by cleanups registered later) is done.
func deleteChangelogAtEnd(t *testing.T, brokers []string, topic string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := kadm.NewClient(cl).DeleteTopics(ctx, topic); err != nil {
			t.Logf("delete %s: %v", topic, err)
		}
	})
}

// waitStatus waits until the own status of node p at addr satisfies cond;
// failing, it prints p's stderr.
func waitStatus(t *testing.T, p *proc, addr, what string, cond func(actors.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		st, err := localStatus(t, addr)
		if err == nil && cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2 minutes: %v %+v\n%s", what, err, st, p.stderr())
		}
	}
}

func localStatus(t *testing.T, addr string) (actors.Status, error) {
	t.Helper()
	var st actors.Status
	body, err := statusapi.Fetch(t.Context(), addr, "/status?local=1")
	if err == nil {
		err = json.NewDecoder(bytes.NewReader(body)).Decode(&st)
	}
	return st, err
}

// httpGet returns the status code and body of url (0 when nothing
// answers).
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}
