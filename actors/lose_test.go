package actors

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
)

// A partition the group takes away (Kafka's lost partitions: the node was
// dropped past its session, and another owns the partition now) while a
// checkpoint that covers it is on its way must not have that checkpoint
// commit its marker: the marker and the state before it are from before
// the other owner's, and committed after them they overwrite its counts
// (issue 17, TestClusterHealsAfterAPause). These tests drive the two
// interleavings: the loss after the partition passed the barrier but
// before the changelog commit began, and during that commit.

// losableSource is one partition that reads its lines, then waits; the
// test takes it away with Lose.
type losableSource struct {
	lines    []string
	listener chan connectors.Listener
}

func (s *losableSource) Start(_ context.Context, l connectors.Listener) error {
	s.listener <- l
	l.Assign(&losablePartition{lines: s.lines})
	return nil
}

func (s *losableSource) Close() error { return nil }

type losablePartition struct {
	lines []string
	next  int
}

func (p *losablePartition) ID() string { return "mem" }

func (p *losablePartition) Seek(pos connectors.Position) error {
	p.next = 0
	if pos != nil {
		n, err := strconv.Atoi(string(pos))
		if err != nil {
			return err
		}
		p.next = n
	}
	return nil
}

func (p *losablePartition) Read(ctx context.Context) (connectors.Batch, error) {
	if p.next >= len(p.lines) {
		select {
		case <-ctx.Done():
			return connectors.Batch{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
			return connectors.Batch{End: connectors.Position(strconv.Itoa(p.next)), CaughtUp: true}, nil
		}
	}
	b := connectors.Batch{Where: "input", Unit: "line"}
	for ; p.next < len(p.lines) && len(b.Records) < 100; p.next++ {
		b.Records = append(b.Records, connectors.Record{Value: []byte(p.lines[p.next]), Seq: int64(p.next + 1)})
	}
	b.End = connectors.Position(strconv.Itoa(p.next))
	return b, nil
}

func (p *losablePartition) Describe(pos connectors.Position) string { return "line " + string(pos) }
func (p *losablePartition) Close() error                            { return nil }

// watchedChangelog records every commit's markers, and can hold the first
// commit that has a marker of "mem" until the test answers it.
type watchedChangelog struct {
	*memio.Changelog
	mu      sync.Mutex
	wrote   bool // a shard wrote "mem"'s state: its checkpoint is on its way
	commits []map[string]connectors.ChangelogMarker
	hold    bool
	held    chan struct{} // closed when the held commit is entered
	answer  chan error    // what the held commit returns (nil: commit it)
}

func (c *watchedChangelog) Write(partition string, key, value []byte) {
	c.mu.Lock()
	c.wrote = c.wrote || partition == "mem"
	c.mu.Unlock()
	c.Changelog.Write(partition, key, value)
}

func (c *watchedChangelog) Commit(ctx context.Context, markers map[string]connectors.ChangelogMarker) (map[string]int64, error) {
	c.mu.Lock()
	c.commits = append(c.commits, markers)
	_, mem := markers["mem"]
	hold := c.hold && mem
	if hold {
		c.hold = false
	}
	c.mu.Unlock()
	if hold {
		close(c.held)
		if err := <-c.answer; err != nil {
			c.Changelog.Abort(ctx)
			return nil, err
		}
	}
	return c.Changelog.Commit(ctx, markers)
}

// committedAfter waits until there were more than n commits and returns
// them.
func (c *watchedChangelog) committedAfter(t *testing.T, n int) []map[string]connectors.ChangelogMarker {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		c.mu.Lock()
		commits := append([]map[string]connectors.ChangelogMarker(nil), c.commits...)
		c.mu.Unlock()
		if len(commits) > n {
			return commits
		}
		if time.Now().After(deadline) {
			t.Fatalf("no changelog commit after the %d-th within a minute", n)
		}
	}
}

// heldSink holds its first flush after the changelog has "mem"'s state,
// that is the flush of a checkpoint "mem" passed, until released.
type heldSink struct {
	*memio.Sink
	clog    *watchedChangelog
	once    sync.Once
	held    chan struct{}
	release chan struct{}
}

func (s *heldSink) Flush(ctx context.Context) error {
	s.clog.mu.Lock()
	wrote := s.clog.wrote
	s.clog.mu.Unlock()
	if wrote {
		s.once.Do(func() {
			close(s.held)
			<-s.release
		})
	}
	return s.Sink.Flush(ctx)
}

// runLosable runs clogScript over one losable partition with cl and
// results; it returns the source's listener and a func that stops the
// run and returns its error.
func runLosable(t *testing.T, cl connectors.Changelog, results connectors.Sink) (connectors.Listener, func() error) {
	t.Helper()
	src := &losableSource{lines: clogLines(1000), listener: make(chan connectors.Listener, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Config{Pipeline: load(t, clogScript), Source: src, Store: openStore(t), Results: results,
			MaxErrors: -1, Shards: 2, Changelog: cl, Node: "test", Stats: &Stats{},
			CheckpointInterval: 20 * time.Millisecond, TriggerInterval: 10 * time.Millisecond})
		done <- err
	}()
	var l connectors.Listener
	select {
	case l = <-src.listener:
	case <-time.After(time.Minute):
		cancel()
		t.Fatal("the source did not start within a minute")
	}
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			t.Fatal("the run did not stop within a minute")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return l, stop
}

// lose calls l.Lose("mem") and closes the returned channel when it
// returns.
func lose(l connectors.Listener) chan struct{} {
	returned := make(chan struct{})
	go func() {
		l.Lose("mem")
		close(returned)
	}()
	return returned
}

func waitClosed(t *testing.T, c chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(time.Minute):
		t.Fatalf("%s: not within a minute", what)
	}
}

// The partition passed the barrier of a checkpoint, and is lost while the
// sinks flush it: the checkpoint must not commit its marker.
func TestLossAfterTheBarrierAbortsTheCheckpoint(t *testing.T) {
	cl := &watchedChangelog{Changelog: &memio.Changelog{}}
	results := &heldSink{Sink: &memio.Sink{}, clog: cl, held: make(chan struct{}), release: make(chan struct{})}
	l, _ := runLosable(t, cl, results)
	waitClosed(t, results.held, "a checkpoint that mem passed flushing")
	cl.mu.Lock()
	before := len(cl.commits)
	cl.mu.Unlock()
	waitClosed(t, lose(l), "Lose")
	close(results.release)
	for _, m := range cl.committedAfter(t, before)[before:] {
		if _, ok := m["mem"]; ok {
			t.Fatalf("a checkpoint committed the marker of partition mem after it was lost: %v", m)
		}
	}
}

// The partition is lost while the changelog commits a checkpoint that
// covers it: Lose waits for the commit's answer (Kafka's group refuses it
// then, while the node has not rejoined the group), and a refused commit
// aborts the checkpoint.
func TestLossDuringTheCommitWaitsForItsAnswer(t *testing.T) {
	cl := &watchedChangelog{Changelog: &memio.Changelog{}, hold: true, held: make(chan struct{}), answer: make(chan error, 1)}
	l, _ := runLosable(t, cl, &memio.Sink{})
	waitClosed(t, cl.held, "a commit with mem's marker")
	cl.mu.Lock()
	before := len(cl.commits)
	cl.mu.Unlock()
	returned := lose(l)
	select {
	case <-returned:
		t.Fatal("Lose returned while the commit of a checkpoint covering the partition was under way")
	case <-time.After(300 * time.Millisecond):
	}
	cl.answer <- connectors.ErrNotMember
	waitClosed(t, returned, "Lose after the commit was refused")
	for _, m := range cl.committedAfter(t, before)[before:] {
		if _, ok := m["mem"]; ok {
			t.Fatalf("a checkpoint committed the marker of partition mem after it was lost: %v", m)
		}
	}
	if _, marker := cl.Keys("mem"); marker != "" {
		t.Fatalf("the changelog has a marker of mem: %s", marker)
	}
}
