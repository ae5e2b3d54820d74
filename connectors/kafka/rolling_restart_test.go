package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/internal/testenv"
)

// A rolling restart: every node of a three-node cluster is stopped and
// started again, one at a time, while records keep arriving. Each node
// goes down at a point it was seen to reach (a checkpoint made while it
// read records) and the next one only after the restarted node has
// checkpointed records of its own again. The output topic, read
// read_committed, is then compared with what the producer had
// acknowledged: nothing is missing, and with --exactly-once nothing is
// there twice.
func TestRollingRestart(t *testing.T) {
	brokers := testenv.Kafka(t)
	for _, tc := range []struct {
		name string
		// exactlyOnce runs the nodes with --exactly-once and static
		// members (instance=NAME, which names their transactions); else
		// they are dynamic members and the group rebalances as each
		// node leaves and comes back.
		exactlyOnce bool
		// kill stops each node with SIGKILL instead of SIGTERM.
		kill bool
	}{
		{name: "SIGTERM at-least-once"},
		{name: "SIGTERM exactly-once", exactlyOnce: true},
		{name: "kill -9 exactly-once", exactlyOnce: true, kill: true},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			rollingRestart(t, brokers, tc.exactlyOnce, tc.kill)
		})
	}
}

func rollingRestart(t *testing.T, brokers []string, exactlyOnce, kill bool) {
	in := testenv.NewTopic(t, brokers, 6)
	out := testenv.NewTopic(t, brokers, 3)
	group := in + "-g"
	names := []string{"a", "b", "c"}
	t.Cleanup(func() {
		tmp := []string{changelogOf(group, in)}
		for _, n := range names {
			tmp = append(tmp, "__eddy_checkpoints.eddy.passthrough."+out+"."+n)
		}
		deleteTopics(brokers, tmp...)
	})
	dirs := t.TempDir()
	start := func(name string) *rollingNode {
		params := "group=" + group + "&session-timeout=6s"
		args := []string{"run", "testdata/passthrough.lua", "--sink", brokerURI(brokers, out, ""),
			"--state", filepath.Join(dirs, name), "--checkpoint-interval", "300ms", "--trigger-interval", "100ms",
			"--node", name, "--cluster-port", strings.TrimPrefix(freePort(t), "127.0.0.1:"), "-v"}
		if exactlyOnce {
			params += "&instance=" + name
			args = append(args, "--exactly-once")
		}
		return startRolling(t, name, append(args, "--source", brokerURI(brokers, in, params)))
	}
	nodes := make([]*rollingNode, len(names))
	var every []*rollingNode // every process started, for the logs
	for i, name := range names {
		nodes[i] = start(name)
		every = append(every, nodes[i])
	}
	logs := func() string {
		var sb strings.Builder
		for _, n := range nodes {
			fmt.Fprintf(&sb, "--- %s:\n%s\n", n.name, n.err.tail())
		}
		return sb.String()
	}
	t.Cleanup(func() {
		if t.Failed() {
			// Every process's warnings and errors: a node's debug lines
			// crowd them out of its tail.
			for _, n := range every {
				t.Logf("--- %s (started %s), warnings and errors:\n%s", n.name, n.started.Format("15:04:05.000"), n.err.warnings())
			}
		}
	})
	waitMembers(t, brokers, group, 3)
	load := startLoad(t, brokers, in)
	for i, n := range nodes {
		// The node has checkpointed records it read: it is mid-stream.
		n.waitWorking(t, logs)
		if kill {
			n.cmd.Process.Signal(syscall.SIGKILL)
			n.wait(t, logs)
		} else {
			n.cmd.Process.Signal(syscall.SIGTERM)
			if err := n.wait(t, logs); err != nil {
				t.Fatalf("%s did not stop cleanly on SIGTERM: %v\n%s", n.name, err, logs())
			}
		}
		at := load.produced()
		nodes[i] = start(n.name)
		every = append(every, nodes[i])
		waitMembers(t, brokers, group, 3)
		nodes[i].waitWorking(t, logs)
		t.Logf("%s restarted (%d records produced by then)", n.name, at)
	}
	produced := load.stop(t)
	waitNoLag(t, brokers, group, in)
	for _, n := range nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range nodes {
		if err := n.wait(t, logs); err != nil {
			t.Fatalf("%s did not stop cleanly at the end: %v\n%s", n.name, err, logs())
		}
	}
	recs, missing, dup := onceEach(t, brokers, out, int(produced))
	t.Logf("%d records produced, %d in the output (read_committed): %d missing, %d repeated", produced, len(recs), missing, dup)
	if missing > 0 || exactlyOnce && dup > 0 {
		t.Fatalf("after restarting every node in turn: %d of %d inputs missing, %d repeated\n%s", missing, produced, dup, logs())
	}
}

// rollingNode is one `eddy run` of a rolling restart, serving its status
// on http.
type rollingNode struct {
	clusterNode
	started time.Time
	done    chan struct{}
	exit    error
}

// warnings are the lines of a process's log at WARN or ERROR, and those
// that are not log records (its last words).
func (s *syncBuffer) warnings() string {
	var keep []string
	for _, l := range strings.Split(s.String(), "\n") {
		if !strings.HasPrefix(l, "time=") || strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func startRolling(t *testing.T, name string, args []string) *rollingNode {
	t.Helper()
	n := &rollingNode{clusterNode: clusterNode{name: name, http: freePort(t), out: &syncBuffer{}, err: &syncBuffer{}}}
	n.cmd = exec.Command(eddyPath(t), append(args, "--http", n.http)...)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.err
	n.started = time.Now()
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { n.exit = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() { n.cmd.Process.Kill(); <-n.done })
	return n
}

// wait waits (two minutes at most) for the process to exit and returns
// how it ended.
func (n *rollingNode) wait(t *testing.T, logs func() string) error {
	t.Helper()
	select {
	case <-n.done:
		return n.exit
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not exit within 2m\n%s", n.name, logs())
		return nil
	}
}

// waitWorking waits until this process of the node owns partitions, none
// restoring, has read records and has completed a checkpoint since it
// started.
func (n *rollingNode) waitWorking(t *testing.T, logs func() string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-n.done:
			t.Fatalf("%s exited (%v) before it worked\n%s", n.name, n.exit, logs())
		default:
		}
		b, err := n.get("/status?local=1")
		var st struct {
			Partitions []struct {
				Restoring bool `json:"restoring"`
			} `json:"partitions"`
			Read       int64 `json:"records_read"`
			Checkpoint *struct {
				Time time.Time `json:"time"`
			} `json:"last_checkpoint"`
		}
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		working := err == nil && len(st.Partitions) > 0 && st.Read > 0 && st.Checkpoint != nil && st.Checkpoint.Time.After(n.started)
		for _, p := range st.Partitions {
			working = working && !p.Restoring
		}
		if working {
			return
		}
		last = fmt.Sprint(err, " ", string(b))
		if time.Now().After(deadline) {
			t.Fatalf("%s has not checkpointed records it read within a minute: %s\n%s", n.name, last, logs())
		}
	}
}

// load produces {"n": i} records to a topic, i = 0, 1, 2, ..., in
// acknowledged batches, until stopped.
type load struct {
	acked atomic.Int64
	quit  chan struct{}
	ended chan error
}

func startLoad(t *testing.T, brokers []string, topic string) *load {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	l := &load{quit: make(chan struct{}), ended: make(chan error, 1)}
	go func() {
		defer cl.Close()
		l.ended <- l.run(cl)
	}()
	t.Cleanup(func() {
		select {
		case <-l.quit:
		default:
			close(l.quit)
		}
	})
	return l
}

// run produces 250 records every 25 ms (10,000 a second at most): a
// steady stream the three nodes keep up with on a loaded machine.
func (l *load) run(cl *kgo.Client) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-l.quit:
			return nil
		case <-tick.C:
		}
		from := l.acked.Load()
		recs := make([]*kgo.Record, 250)
		for i := range recs {
			recs[i] = &kgo.Record{Value: fmt.Appendf(nil, `{"n":%d}`, from+int64(i))}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := cl.ProduceSync(ctx, recs...).FirstErr()
		cancel()
		if err != nil {
			return fmt.Errorf("producing records %d-%d: %w", from, from+249, err)
		}
		l.acked.Add(int64(len(recs)))
	}
}

func (l *load) produced() int64 { return l.acked.Load() }

// stop ends the load and returns how many records were acknowledged.
func (l *load) stop(t *testing.T) int64 {
	t.Helper()
	close(l.quit)
	select {
	case err := <-l.ended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the producer did not stop within 2m")
	}
	return l.acked.Load()
}
