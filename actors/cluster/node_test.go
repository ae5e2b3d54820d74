package cluster

// The tests start each node in a process of its own, as eddy run does: a
// second node in one process races with the first over grpc's logger (see
// Join). The test binary is the node: started with nodeEnv set, TestMain
// joins the cluster and answers commands, one JSON line each way, on its
// stdin and stdout; its stderr is the test's to read, and any race the
// detector reports there fails the test.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/actors/cluster/clustertest"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/lockedbuf"
)

const nodeEnv = "EDDY_CLUSTER_TEST_NODE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(nodeEnv); spec != "" {
		os.Exit(serveNode(spec))
	}
	os.Exit(m.Run())
}

// nodeSpec is how the test wants a node process started.
type nodeSpec struct {
	Config    Config
	Partition string
	Counts    map[string]int
	// All names every partition of the source (clustertest.Words.All).
	All     []string
	Verbose bool
	// Retry: after a failed join, answer its error and join again with
	// Port 0, in the same process.
	Retry bool
	// Group gives the node a fakeGroup (Config.Group) with this member id.
	Group string
}

// command is what the test asks a node process.
type command struct {
	Op     string        `json:"op"` // members, status, state, local-state, fail, restoring, kill-remote, removed
	Want   int           `json:"want,omitempty"`
	Within time.Duration `json:"within,omitempty"`
	Key    string        `json:"key,omitempty"`
	Fail   bool          `json:"fail,omitempty"`
	// Restoring, with Restored of ToRestore changes: the node's partition
	// restores from its changelog until told otherwise.
	Restoring bool  `json:"restoring,omitempty"`
	Restored  int64 `json:"restored,omitempty"`
	ToRestore int64 `json:"to_restore,omitempty"`
}

// answer is a node process's reply to a command (its first line answers
// the join).
type answer struct {
	ID      string   `json:"id,omitempty"`
	Address string   `json:"address,omitempty"`
	Health  int      `json:"health,omitempty"`
	Members []Member `json:"members,omitempty"`
	Status  *Status  `json:"status,omitempty"`
	// Rows are the rows of a state answer as fmt.Sprint prints them (of
	// an incomplete one too).
	Rows string `json:"rows,omitempty"`
	// Err is the error, NoTable whether it is actors.ErrNoResultTable,
	// Incomplete whether it is actors.ErrIncomplete, Failed the members a
	// *MemberError names.
	Err        string   `json:"err,omitempty"`
	NoTable    bool     `json:"no_table,omitempty"`
	Incomplete bool     `json:"incomplete,omitempty"`
	Failed     []string `json:"failed,omitempty"`
	// Removed are the group members the node removed (fakeGroup).
	Removed []string `json:"removed,omitempty"`
}

// failing is a node's engine that answers actors.ErrNoResultTable while
// fail is set, and whose partition restores while the test says so (the
// test sets them while the node's answerer reads them).
type failing struct {
	fail  atomic.Bool
	mu    sync.Mutex
	w     *clustertest.Words
	group *fakeGroup
}

// fakeGroup is a node's consumer group membership: it records the members
// the node removes.
type fakeGroup struct {
	member  string
	mu      sync.Mutex
	removed []string
}

func (g *fakeGroup) Member() GroupMember { return GroupMember{ID: g.member} }

func (g *fakeGroup) Remove(_ context.Context, m GroupMember) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removed = append(g.removed, m.ID)
	return nil
}

func (f *failing) Status(ctx context.Context) (actors.Status, error) {
	if f.fail.Load() {
		return actors.Status{}, actors.ErrNoResultTable
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.w.Status(ctx)
}

func (f *failing) Share(ctx context.Context, key string) (actors.Share, error) {
	if f.fail.Load() {
		return actors.Share{}, actors.ErrNoResultTable
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.w.Share(ctx, key)
}

func (f *failing) Merge(ctx context.Context, key string, shares [][]byte) ([]connectors.Row, error) {
	return f.w.Merge(ctx, key, shares)
}

func (f *failing) restoring(on bool, done, total int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w.Restoring, f.w.Restored, f.w.ToRestore = on, done, total
}

// serveNode is a node process: it joins, then answers commands until its
// stdin closes, and leaves.
func serveNode(spec string) int {
	var s nodeSpec
	out := json.NewEncoder(os.Stdout)
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		out.Encode(answer{Err: fmt.Sprintf("bad %s: %v", nodeEnv, err)})
		return 2
	}
	if s.Verbose {
		s.Config.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	local := &failing{w: &clustertest.Words{Partition: s.Partition, Counts: s.Counts, All: s.All}}
	if s.Group != "" {
		local.group = &fakeGroup{member: s.Group}
		s.Config.Group = local.group
	}
	n, err := Join(context.Background(), s.Config, local)
	if err != nil && s.Retry {
		out.Encode(answer{Err: err.Error()})
		s.Config.Port = 0
		n, err = Join(context.Background(), s.Config, local)
	}
	if err != nil {
		out.Encode(answer{Err: err.Error()})
		return 0
	}
	defer n.Leave()
	out.Encode(answer{ID: n.ID(), Address: n.Address(), Health: n.HealthPort()})
	in := json.NewDecoder(os.Stdin)
	for {
		var c command
		if err := in.Decode(&c); err != nil {
			return 0 // stdin closed: the test is done with this node
		}
		out.Encode(n.obey(local, c))
	}
}

// obey runs one command on the node.
func (n *Node) obey(local *failing, c command) answer {
	ctx := context.Background()
	switch c.Op {
	case "members":
		ms, err := n.awaitMembers(c.Want, c.Within)
		return answer{Members: ms, Err: errString(err)}
	case "status":
		st, err := n.Status(ctx)
		return answer{Status: &st, Err: errString(err)}
	case "state":
		rows, err := n.State(ctx, c.Key)
		return stateAnswer(rows, err)
	case "local-state":
		rows, err := n.LocalState(ctx, c.Key)
		return stateAnswer(rows, err)
	case "fail":
		local.fail.Store(c.Fail)
		return answer{}
	case "restoring":
		local.restoring(c.Restoring, c.Restored, c.ToRestore)
		return answer{}
	case "removed":
		if local.group == nil {
			return answer{Err: "the node has no group"}
		}
		local.group.mu.Lock()
		defer local.group.mu.Unlock()
		return answer{Removed: slices.Clone(local.group.removed)}
	case "kill-remote":
		// Dead, but its health port still answers: still listed, and
		// nothing answers on its remote.
		n.system.Root.Stop(actor.NewPID(n.Address(), nodeActor))
		n.c.Remote.Shutdown(false)
		return answer{}
	}
	return answer{Err: fmt.Sprintf("unknown command %q", c.Op)}
}

func stateAnswer(rows []connectors.Row, err error) answer {
	a := answer{Err: errString(err), NoTable: errors.Is(err, actors.ErrNoResultTable), Incomplete: errors.Is(err, actors.ErrIncomplete)}
	if err == nil || a.Incomplete {
		a.Rows = fmt.Sprint(rows)
	}
	var me *MemberError
	if errors.As(err, &me) {
		for _, f := range me.Failed {
			a.Failed = append(a.Failed, f.ID)
		}
	}
	return a
}

// awaitMembers waits until the node sees want members (any number when
// want is 0), woken by each topology change.
func (n *Node) awaitMembers(want int, within time.Duration) ([]Member, error) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		changed := n.topologyChanged()
		ms := n.Members()
		if want == 0 || len(ms) == want {
			return ms, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return ms, fmt.Errorf("node %s sees %d members after %v, want %d: %v", n.ID(), len(ms), within, want, ms)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// nodeProc is a node running in a process of its own.
type nodeProc struct {
	t       *testing.T
	ID      string
	Address string
	Health  int

	cmd     *exec.Cmd
	in      io.WriteCloser
	answers chan answer // closed when the process's stdout ends
	stderr  *lockedbuf.Buffer
	done    chan struct{} // closed when the process has exited
	waitErr error
	killed  bool // by the test: its exit is no failure
}

// kill kills the node's process with SIGKILL and waits for it to exit.
func (p *nodeProc) kill() {
	p.killed = true
	p.cmd.Process.Kill()
	<-p.done
}

// startNodes starts one node process a spec, all at once, and waits for
// each to join.
func startNodes(t *testing.T, specs ...nodeSpec) []*nodeProc {
	t.Helper()
	procs := make([]*nodeProc, len(specs))
	for i, s := range specs {
		procs[i] = startNode(t, s)
	}
	for i, p := range procs {
		a := p.read("join")
		if a.Err != "" {
			t.Fatalf("node %d: %s", i, a.Err)
		}
		p.ID, p.Address, p.Health = a.ID, a.Address, a.Health
	}
	return procs
}

// startNode starts a node process; its first answer is its join's.
func startNode(t *testing.T, s nodeSpec) *nodeProc {
	t.Helper()
	s.Verbose = testing.Verbose()
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), nodeEnv+"="+string(spec))
	p := &nodeProc{t: t, cmd: cmd, answers: make(chan answer), stderr: &lockedbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if p.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.answers)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var a answer
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				a.Err = fmt.Sprintf("bad answer %q: %v", sc.Text(), err)
			}
			p.answers <- a
		}
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// do sends c to the node and returns its answer.
func (p *nodeProc) do(c command) answer {
	p.t.Helper()
	line, err := json.Marshal(c)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.in.Write(append(line, '\n')); err != nil {
		p.t.Fatalf("node %s: %s: %v\n%s", p.ID, c.Op, err, p.stderr)
	}
	return p.read(c.Op)
}

// read waits for the node's next answer.
func (p *nodeProc) read(what string) answer {
	p.t.Helper()
	const within = time.Minute // bounds the slowest command (a fan-out with a dead member)
	select {
	case a, ok := <-p.answers:
		if !ok {
			<-p.done
			p.t.Fatalf("node %s exited before answering %s: %v\n%s", p.ID, what, p.waitErr, p.stderr)
		}
		return a
	case <-time.After(within):
		p.t.Fatalf("node %s did not answer %s within %v\n%s", p.ID, what, within, p.stderr)
	}
	panic("unreachable")
}

// members waits until the node sees want members, and returns them.
func (p *nodeProc) members(want int, within time.Duration) []Member {
	p.t.Helper()
	a := p.do(command{Op: "members", Want: want, Within: within})
	if a.Err != "" {
		p.t.Fatal(a.Err)
	}
	return a.Members
}

// leave closes the node's stdin: it leaves the cluster and exits.
func (p *nodeProc) leave() {
	p.t.Helper()
	p.in.Close()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("node %s did not exit within 30s of its stdin closing\n%s", p.ID, p.stderr)
	}
}

// stop makes the node leave if it has not, and fails the test if the
// process exited badly or the race detector reported anything.
func (p *nodeProc) stop() {
	p.leave()
	if p.waitErr != nil && !p.killed || strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
		p.t.Errorf("node %s: exit %v\n%s", p.ID, p.waitErr, p.stderr)
	}
}
