package actors

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
)

// A partition restarted while the changelog commits a checkpoint that
// covers it (no transactional sink: the partition restarts in-process).
// Its new incarnation starts from the last checkpoint complete in the
// store, the one before. Dropped as aborted while its commit went on, the
// checkpoint landed in the changelog anyway: the changelog had the
// partition's state at the checkpoint's position, then a marker behind it
// where the new incarnation stood, and the partition's next owner, which
// restores from the changelog, counted the records in between twice.

// phasedPart reads its lines ten a batch, and stalls (caught up) at each
// gate's position until the gate is closed, and once sought back (a
// restart) until restarted is closed.
type phasedPart struct {
	lines     []string
	gates     map[int]chan struct{}
	restarted chan struct{}
	mu        sync.Mutex
	next      int
	rewound   bool
}

func (p *phasedPart) ID() string { return "mem" }

func (p *phasedPart) Seek(pos connectors.Position) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	to := 0
	if pos != nil {
		to, _ = strconv.Atoi(string(pos))
	}
	p.rewound = p.rewound || to < p.next
	p.next = to
	return nil
}

// stall is the gate reading waits at now, if any.
func (p *phasedPart) stall() chan struct{} {
	if p.rewound && p.restarted != nil && !isClosed(p.restarted) {
		return p.restarted
	}
	if g := p.gates[p.next]; g != nil && !isClosed(g) {
		return g
	}
	return nil
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (p *phasedPart) Read(ctx context.Context) (connectors.Batch, error) {
	p.mu.Lock()
	gate, at := p.stall(), p.next
	p.mu.Unlock()
	if gate != nil {
		select {
		case <-ctx.Done():
			return connectors.Batch{}, ctx.Err()
		case <-gate:
		case <-time.After(10 * time.Millisecond):
		}
		return connectors.Batch{End: connectors.Position(strconv.Itoa(at)), CaughtUp: true}, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= len(p.lines) {
		return connectors.Batch{}, connectors.ErrEndOfInput
	}
	b := connectors.Batch{Where: "mem", Unit: "line"}
	for len(b.Records) < 10 && p.next < len(p.lines) && (len(b.Records) == 0 || p.gates[p.next] == nil) {
		b.Records = append(b.Records, connectors.Record{Value: []byte(p.lines[p.next]), Seq: int64(p.next + 1)})
		p.next++
	}
	b.End = connectors.Position(strconv.Itoa(p.next))
	return b, nil
}

func (p *phasedPart) Describe(pos connectors.Position) string { return "line " + string(pos) }
func (p *phasedPart) Close() error                            { return nil }

// heldCommitChangelog holds the commit whose marker of "mem" is at
// position holdAt until answered (nil: it commits; else it is refused
// with that error); like Kafka's changelog, writes wait
// while a commit is under way. committed fires after each commit, and
// marks lists the positions of mem's markers committed.
type heldCommitChangelog struct {
	*memio.Changelog
	txMu      sync.RWMutex
	holdAt    string
	held      chan struct{}
	answer    chan error
	committed pulse
	mu        sync.Mutex
	marks     []string
}

func (c *heldCommitChangelog) Write(partition string, key, value []byte) {
	c.txMu.RLock()
	defer c.txMu.RUnlock()
	c.Changelog.Write(partition, key, value)
}

func (c *heldCommitChangelog) Commit(ctx context.Context, markers map[string]connectors.ChangelogMarker) (map[string]int64, error) {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	m, mem := markers["mem"]
	if mem && string(m.Position) == c.holdAt && !isClosed(c.held) {
		close(c.held)
		if err := <-c.answer; err != nil {
			c.Changelog.Abort(ctx)
			return nil, err
		}
	}
	offsets, err := c.Changelog.Commit(ctx, markers)
	if mem && err == nil {
		c.mu.Lock()
		c.marks = append(c.marks, string(m.Position))
		c.mu.Unlock()
	}
	c.committed.fire()
	return offsets, err
}

func (c *heldCommitChangelog) markCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.marks)
}

func TestRestartDuringTheChangelogCommitKeepsStateAndMarkerTogether(t *testing.T) {
	restartDuringTheCommit(t, nil)
}

// The same commit refused (the group dropped the node): the checkpoint is
// aborted, and the restart goes on from the checkpoint before.
func TestRestartDuringARefusedChangelogCommit(t *testing.T) {
	restartDuringTheCommit(t, fmt.Errorf("injected: %w", connectors.ErrNotMember))
}

// restartDuringTheCommit: a node reads mem, whose partition crashes while
// the commit of its checkpoint at line 1500 is held; once the node has
// heard of the restart the commit is answered with answer. After one more
// checkpoint of mem the node stops, and a node of its own restores mem
// from the changelog and reads it to its end: its counts must be the
// lines'.
func restartDuringTheCommit(t *testing.T, answer error) {
	lines := clogLines(3000)
	gate0, gate1 := make(chan struct{}), make(chan struct{})
	part := &phasedPart{lines: lines, gates: map[int]chan struct{}{500: gate0, 1500: gate1}, restarted: make(chan struct{})}
	cl := &heldCommitChangelog{Changelog: &memio.Changelog{}, holdAt: "1500", held: make(chan struct{}), answer: make(chan error, 1),
		committed: newPulse()}
	// The first shard add after the commit at 1500 is held crashes the
	// partition.
	var armed, crashed atomic.Bool
	setTestHookAdd(t, func(string, int) {
		if armed.Load() && crashed.CompareAndSwap(false, true) {
			panic("injected crash")
		}
	})
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Config{Pipeline: load(t, clogScript), Source: &partsSource{parts: []connectors.Partition{part}},
			Store: openStore(t), Results: &memio.Sink{}, MaxErrors: -1, Shards: 2, Changelog: cl, Node: "a", Stats: &Stats{},
			Logger: slog.New(slog.NewTextHandler(logs, nil)), RestartBackoff: time.Millisecond,
			CheckpointInterval: 20 * time.Millisecond, TriggerInterval: 10 * time.Millisecond})
		done <- err
	}()
	// A checkpoint at 500 at most; then the partition reads to 1500, and
	// the commit of the first checkpoint there is held.
	if !cl.committed.until(func() bool { return cl.markCount() > 0 }) {
		t.Fatal("no checkpoint of mem committed within a minute")
	}
	close(gate0)
	waitClosed(t, cl.held, "the commit of a checkpoint at line 1500")
	armed.Store(true)
	close(gate1)
	// The partition crashes reading on, and restarts from the checkpoint
	// before; the node hears of the restart while the commit is held.
	logs.waitFor(t, "partition mem restarted", time.Minute)
	after := cl.markCount() + 1 // a checkpoint of mem after the held one
	if answer == nil {
		after++ // (and the held one)
	}
	cl.answer <- answer
	// A checkpoint of the partition after the held one; then the node
	// stops (with a last checkpoint).
	if !cl.committed.until(func() bool { return cl.markCount() >= after }) {
		t.Fatal("no checkpoint of mem committed after the held one within a minute")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the run did not stop within a minute")
	}
	cl.mu.Lock()
	t.Logf("mem's markers: %v", cl.marks)
	cl.mu.Unlock()
	// The partition's next owner restores from the changelog and reads on
	// from its marker to the end.
	results := &memio.Sink{}
	if _, err := runWithin(t, context.Background(), time.Minute, Config{Pipeline: load(t, clogScript),
		Source: &partsSource{parts: []connectors.Partition{&phasedPart{lines: lines}}}, Store: openStore(t), Results: results,
		MaxErrors: -1, Shards: 2, Changelog: cl.Changelog, Node: "b"}); err != nil {
		t.Fatal(err)
	}
	if got, want := rowsText(results.Rows()), wantCounts(lines); got != want {
		t.Fatalf("the next owner counted\n%s\nwant\n%s", got, want)
	}
}
