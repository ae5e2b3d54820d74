package nexmark_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/nexmark"
	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// TestQueriesOnTwoNodes: every query runs on two nodes of one consumer
// group and gives the reference's rows. The nodes start on empty topics
// (four partitions each); once they have split the partitions between
// them, the events are produced; once the nodes have read some of them and
// each has checkpointed after that, both stop (SIGTERM), and a last run, with an
// empty state directory, takes every partition over from the changelogs
// and drains the rest with --until-idle (the windows and tables a run
// emits only at the end of its input). The three runs' rows together are
// the reference's, each once.
//
// The queries that re-key (joins, aggregates, q11's sessions, and q4 and
// q5 again between their stages) run with --repartition; q0, q1 and q2
// keep each record where it is read.
func TestQueriesOnTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two nodes and a last run for each query")
	}
	brokers := strings.Join(testenv.Kafka(t), ",")
	e := generate(t, t.TempDir(), "nexmark?event-rate=2000", twoNodeEvents)
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			want := q.want(e)
			if len(want) == 0 {
				t.Fatalf("the reference has no rows: the test would prove nothing")
			}
			got := runOnTwoNodes(t, q, brokers)
			if err := nexmark.Compare(want, q.got(t, got), false); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d rows equal the reference's", len(want))
		})
	}
}

// twoNodeEvents keeps the test quick: 15 seconds of event time, a few of
// q5's and q7's windows.
const twoNodeEvents = 30000

// runOnTwoNodes runs q on two nodes and then a last run, on topics of its
// own, and returns every row the three wrote.
func runOnTwoNodes(t *testing.T, q query, brokers string) []byte {
	prefix := newTopics(t, brokers)
	group := prefix + q.name
	deleteGroupTopics(t, brokers, group)
	dir := t.TempDir()
	outs := []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), filepath.Join(dir, "last.jsonl")}
	args := func(i int) []string {
		a := []string{"run", q.name + ".lua", "--source", kafkaSource(q, brokers, prefix), "--sink", "file:" + outs[i],
			"--state", filepath.Join(dir, fmt.Sprint("state", i)), "--checkpoint-interval", "100ms", "--trigger-interval", "50ms", "--progress=false"}
		if repartitions[q.name] {
			a = append(a, "--repartition")
		}
		return a
	}
	a, b := startNode(t, args(0)...), startNode(t, args(1)...)
	waitUntil(t, "the nodes splitting the partitions", []*node{a, b}, func() bool {
		sa, okA := a.status()
		sb, okB := b.status()
		return okA && okB && len(sa.Partitions) > 0 && len(sb.Partitions) > 0 && len(sa.Partitions)+len(sb.Partitions) == 4
	})
	eddy(t, "gen", "nexmark?event-rate=2000", "--count", fmt.Sprint(twoNodeEvents), "--seed", "42", "--brokers", brokers, "--topic-prefix", prefix)
	// Records reach both nodes' shufflers; the engines' records go where
	// their keys are (all of q7's to one partition: it has one key).
	var read int64
	waitUntil(t, "the nodes reading records", []*node{a, b}, func() bool {
		sa, okA := a.status()
		sb, okB := b.status()
		read = sa.Read + sb.Read
		return okA && okB && read > 0
	})
	for _, n := range []*node{a, b} {
		var after uint64
		if st, ok := n.status(); ok && st.Checkpoint != nil {
			after = st.Checkpoint.ID
		}
		waitUntil(t, fmt.Sprintf("a checkpoint of each node after %d records read", read), []*node{a, b}, func() bool {
			st, ok := n.status()
			return ok && st.Checkpoint != nil && st.Checkpoint.ID > after
		})
	}
	for _, n := range []*node{a, b} {
		n.stop(t)
	}
	eddy(t, append(args(2), "--until-idle")...)
	var all []byte
	for _, f := range outs {
		out, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, out...)
	}
	return all
}

// newTopics makes the person, auction and bid topics (four partitions
// each) of a new prefix, deleted when the test ends.
func newTopics(t *testing.T, brokers string) string {
	t.Helper()
	var r [6]byte
	rand.Read(r[:])
	prefix := "eddy_test_nexmark_2n_" + hex.EncodeToString(r[:]) + "_"
	for _, stream := range []string{"person", "auction", "bid"} {
		topic := prefix + stream
		eddy(t, "topics", "create", "kafka://"+brokers+"/"+topic, "--partitions", "4")
		t.Cleanup(func() { tryEddy("topics", "delete", "kafka://"+brokers+"/"+topic) })
	}
	return prefix
}

// node is an eddy run in the background, serving its status.
type node struct {
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	log    strings.Builder
	addr   string
}

var servingLine = regexp.MustCompile(`msg="serving status and state" addr=(\S+)`)

// startNode starts eddy with args and --http on a free port; the node is
// killed when the test ends, if it still runs.
func startNode(t *testing.T, args ...string) *node {
	t.Helper()
	n := &node{exited: make(chan struct{})}
	n.cmd = exec.Command(eddyBin, append(args, "--http", "127.0.0.1:0")...)
	n.cmd.Env = append(os.Environ(), statusapi.RuntimeDirEnv+"="+t.TempDir())
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			n.mu.Lock()
			n.log.WriteString(sc.Text() + "\n")
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				n.addr = m[1]
			}
			n.mu.Unlock()
		}
		n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		<-n.exited
	})
	return n
}

// nodeStatus is what the test reads of GET /status.
type nodeStatus struct {
	Partitions []struct {
		ID string `json:"id"`
	} `json:"partitions"`
	Read       int64 `json:"records_read"`
	Checkpoint *struct {
		ID uint64 `json:"id"`
	} `json:"last_checkpoint"`
}

func (n *node) status() (st nodeStatus, ok bool) {
	n.mu.Lock()
	addr := n.addr
	n.mu.Unlock()
	if addr == "" {
		return st, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := statusapi.Fetch(ctx, addr, "/status")
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

func (n *node) tail() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.log.String()
	return s[max(0, len(s)-4000):]
}

// stop stops the node with SIGTERM and fails the test unless it ends well
// within a minute.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(time.Minute):
		t.Fatalf("the node did not stop within a minute of SIGTERM:\n%s", n.tail())
	}
	if !n.cmd.ProcessState.Success() {
		t.Fatalf("the node ended %v:\n%s", n.cmd.ProcessState, n.tail())
	}
}

// waitUntil polls cond every 20ms until it holds; it fails the test when
// one of the nodes exits first or a minute passes.
func waitUntil(t *testing.T, what string, nodes []*node, cond func() bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		for _, n := range nodes {
			select {
			case <-n.exited:
				t.Fatalf("waiting for %s: a node ended (%v):\n%s", what, n.cmd.ProcessState, n.tail())
			default:
			}
		}
		select {
		case <-deadline:
			t.Fatalf("waiting for %s: not within a minute; the nodes' logs:\n%s\n---\n%s", what, nodes[0].tail(), nodes[1].tail())
		case <-tick.C:
		}
	}
}
