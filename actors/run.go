package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// Config is what Run needs. Pipeline, Source and Store are required; so is
// Results when the pipeline aggregates and Records when it doesn't.
type Config struct {
	Pipeline *scripting.Pipeline
	Source   connectors.Source
	Store    *state.Store
	// Results receives result rows; Records each kept record (the default
	// route); Outputs the named sinks a pipeline's route function picks;
	// DeadLetters the records that failed. Nil sinks are not written.
	Results, Records, DeadLetters connectors.Sink
	Outputs                       map[string]connectors.Sink
	// Late receives records that came after their window closed
	// (watermark plus allowed lateness).
	Late connectors.Sink

	// TriggerInterval is how often results are emitted (0: 1s).
	TriggerInterval time.Duration
	// CheckpointInterval is how often state is checkpointed (0: 5s), at
	// the first trigger after it has passed. Negative intervals, shards,
	// workers or standbys are refused.
	CheckpointInterval time.Duration
	// UntilIdle ends the run, with a final emit and checkpoint, once every
	// partition is caught up.
	UntilIdle bool
	// MaxErrors stops the run when more records than this fail; < 0 means
	// no limit.
	MaxErrors int64
	// Shards is the number of keyed-aggregation actors per partition
	// (0: the number of CPUs).
	Shards int
	// Workers is the number of parse workers per partition, each with its
	// own LState (0: the number of CPUs).
	Workers int
	Logger  *slog.Logger
	// Stats, when set, is kept up to date for progress displays.
	Stats *Stats
	// OnReady, when set, is called with a Handle once the run has started,
	// to serve status and live-state queries.
	OnReady func(*Handle)
	// Changelog, when set, receives every checkpoint's state changes, and
	// partitions whose local state is missing or behind restore from it
	// (a Kafka source's, so state follows partitions between nodes).
	// ChangelogShared says it writes into a transactional sink's
	// transactions (the sink's commit and abort are its own).
	Changelog       connectors.Changelog
	ChangelogShared bool
	// Node names this process in changelog markers and status.
	Node string
	// Standby, with a changelog and a StandbySource, keeps warm copies of
	// partitions other nodes own: each partition gets up to Standby copies
	// on nodes other than its owner.
	Standby int

	// MaxRestarts is how often a failing partition is restarted from the
	// last checkpoint before the run stops with its cause (default 5).
	// Failures more than restartWindow apart start the count over.
	MaxRestarts int
	// RestartBackoff is the wait before a partition's first restart; it
	// doubles with each restart after that, up to maxRestartBackoff
	// (default 200ms).
	RestartBackoff time.Duration
	// StopTimeout bounds the stop checkpoint after ctx is cancelled: when
	// it is not complete by then, the run gives up on it (the last
	// complete checkpoint stands), interrupts the script calls still
	// running and ends (default 3s).
	StopTimeout time.Duration

	// Reload, when set, delivers new versions of the script: each is
	// checked against the running one and, when its state layout is the
	// same, takes over at the next checkpoint (see Reload).
	Reload <-chan Reload
}

// Stats are the run's counters, safe to read while it runs.
type Stats struct {
	Read, Kept, Failed atomic.Int64
	Checkpoints        atomic.Int64
	LastCheckpoint     atomic.Uint64
	Partitions         atomic.Int64
	Ended              atomic.Int64
	Late               atomic.Int64
	// Watermark is the pipeline's event-time watermark, Unix ms.
	Watermark atomic.Int64
	// BatchLatency is the time from a batch leaving its source to its
	// records being folded into state (or, without aggregation, handed to
	// the records sink).
	BatchLatency Latency
	// FireLatency is the time from reading the record that moved the
	// watermark past a window's end to the window's row leaving for the
	// sink (final mode); CheckpointLatency from a checkpoint's barrier to
	// the checkpoint being complete.
	FireLatency, CheckpointLatency Latency
	// Restoring counts partitions reading their changelog; RestoreDone and
	// RestoreTotal are their progress in changes; Restored adds up the
	// changes of the finished restores.
	Restoring, RestoreDone, RestoreTotal, Restored atomic.Int64
	// CheckpointsFailed counts the checkpoints aborted or not completed.
	CheckpointsFailed atomic.Int64
	// StandbyChanges counts the changelog changes read into standby
	// copies; StandbyOffsets maps each standby partition to the changelog
	// offset its copy has read to.
	StandbyChanges atomic.Int64
	StandbyOffsets atomic.Pointer[map[string]int64]
	// Reloads counts the new versions of the script that took over;
	// ReloadsRefused those refused (an error, or a changed state layout).
	Reloads, ReloadsRefused atomic.Int64
	// sinks: *SinkStats by output name (Sink, Sinks).
	sinks sync.Map
}

// SinkStats are one output's counters.
type SinkStats struct {
	// Rows counts the rows written to the sink; Errors its failed writes,
	// flushes and commits.
	Rows, Errors atomic.Int64
	// Flush is the time a flush (or a transactional sink's commit) takes;
	// EndToEnd the time from a batch leaving its source to the sink's
	// write of the records it produced returning (record outputs: each
	// write; results: each trigger's, from the oldest batch folded into
	// its rows; windows emitted final have FireLatency instead).
	Flush, EndToEnd Latency
	// retrier is the sink, when it retries writes itself.
	retrier connectors.Retrier
}

// Retries is how many times the sink tried a write again (0 for sinks
// that don't retry).
func (s *SinkStats) Retries() int64 {
	if s.retrier == nil {
		return 0
	}
	return s.retrier.Retries()
}

// Sink returns the counters of the output named name, made on first use.
func (s *Stats) Sink(name string) *SinkStats {
	v, _ := s.sinks.LoadOrStore(name, &SinkStats{})
	return v.(*SinkStats)
}

// addSink makes the counters of the output name written by sink.
func (s *Stats) addSink(name string, sink connectors.Sink) *SinkStats {
	st := &SinkStats{}
	st.retrier, _ = sink.(connectors.Retrier)
	v, _ := s.sinks.LoadOrStore(name, st)
	return v.(*SinkStats)
}

// Sinks calls f with each output's counters.
func (s *Stats) Sinks(f func(name string, st *SinkStats)) {
	s.sinks.Range(func(k, v any) bool {
		f(k.(string), v.(*SinkStats))
		return true
	})
}

// Summary says how a run ended.
type Summary struct {
	Read, Kept, Failed int64
	Checkpoints        int64
	LastCheckpoint     uint64
	// Interrupted is set when the run stopped before its input ended.
	Interrupted bool
}

// ErrTooManyErrors is returned (wrapped) when more records failed than
// Config.MaxErrors allows.
var ErrTooManyErrors = errors.New("too many failed records")

func (c *Config) validate() error {
	if c.Pipeline == nil || c.Source == nil || c.Store == nil {
		return fmt.Errorf("actors: Config needs Pipeline, Source and Store")
	}
	if c.Pipeline.HasAggregate() && c.Results == nil {
		return fmt.Errorf("pipeline %s aggregates but has no results sink", c.Pipeline.Name)
	}
	if err := c.CheckStages(); err != nil {
		return err
	}
	// Zero means the default; a negative value is a mistake, never a
	// default in disguise.
	for _, n := range []struct {
		name string
		bad  bool
		val  any
	}{
		{"TriggerInterval", c.TriggerInterval < 0, c.TriggerInterval},
		{"CheckpointInterval", c.CheckpointInterval < 0, c.CheckpointInterval},
		{"Shards", c.Shards < 0, c.Shards},
		{"Workers", c.Workers < 0, c.Workers},
		{"Standby", c.Standby < 0, c.Standby},
	} {
		if n.bad {
			return fmt.Errorf("actors: Config.%s is %v: want a positive value, or 0 for the default", n.name, n.val)
		}
	}
	if c.TriggerInterval == 0 {
		c.TriggerInterval = time.Second
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 5 * time.Second
	}
	// Checkpoints are taken at triggers: a shorter interval means every
	// trigger.
	c.CheckpointInterval = max(c.CheckpointInterval, c.TriggerInterval)
	if c.Shards == 0 {
		c.Shards = runtime.NumCPU()
	}
	if c.Workers == 0 {
		c.Workers = runtime.NumCPU()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Stats == nil {
		c.Stats = &Stats{}
	}
	if c.MaxRestarts <= 0 {
		c.MaxRestarts = 5
	}
	if c.RestartBackoff <= 0 {
		c.RestartBackoff = 200 * time.Millisecond
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 3 * time.Second
	}
	return standbyUsable(*c)
}

// engine is what every actor of one run shares. Read-only after Run starts.
type engine struct {
	cfg    Config
	system *actor.ActorSystem
	// storeWrites are the shards' checkpoint writes in flight: a run that
	// ends (on a failure too, when no shard stops first) returns only once
	// they have, for the store is closed after it (state.Store.Close).
	storeWrites shardCommits
	// ctx ends when the run does (or a stop gives up); cancel ends it.
	ctx    context.Context
	cancel context.CancelFunc
	node   *actor.PID
	// emitter and the sinks' writers; nil when unused.
	emitter                    *actor.PID
	results, deadLetters, late *actor.PID
	// firstStage: the shards of a multi-stage pipeline's second stage
	// (stage.go); nil pids for one stage.
	firstStage stageHop
	// outputs: the record sinks' writers by name ("records" and the names
	// a route function returns).
	outputs map[string]*actor.PID
	// transactional: the writers of sinks that commit with checkpoints.
	transactional map[string]*actor.PID
	// ready is closed once the node has set node.
	ready chan struct{}
	// stopping is set once the node begins a stop: a partition that
	// restarts after it does not read.
	stopping atomic.Bool
	// standby keeps warm copies of other nodes' partitions (nil when
	// Config.Standby is 0); standbys lists them.
	standby  *actor.PID
	standbys atomic.Pointer[[]string]
	// script is the version of the pipeline new runtimes are made from
	// (cfg.Pipeline until a reload); scripts every version the run loaded.
	script    atomic.Pointer[scripting.Pipeline]
	scriptsMu sync.Mutex
	scripts   []*scripting.Pipeline
	// recent keeps the latest checkpoints and dead letters (recent.go),
	// behind locks of its own.
	recent recent
}

// Run runs a pipeline until its input ends (or, with UntilIdle, is caught
// up), ctx is cancelled (a stop with a checkpoint of what is complete), or
// it fails. It never waits without a bound: a partition that keeps failing
// ends the run with its cause, an actor of the tree that fails ends it too,
// and a stop takes at most StopTimeout plus stopAfterGiveUp.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.validate(); err != nil {
		return Summary{}, err
	}
	if err := checkOwner(cfg); err != nil {
		return Summary{}, err
	}
	// protoactor logs a lot at info; its errors (a panicking actor) matter.
	actorLog := slog.New(minLevel{cfg.Logger.Handler(), slog.LevelError})
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return actorLog }))
	defer system.Shutdown()
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &engine{cfg: cfg, system: system, ctx: runCtx, cancel: cancel, ready: make(chan struct{})}
	e.setPipeline(cfg.Pipeline)
	g := &guardian{failed: make(chan error, 1), names: map[string]string{}}
	spawn := func(name string, a actor.Actor) *actor.PID {
		pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }, actor.WithGuardian(g)))
		g.name(pid, name)
		return pid
	}
	// Before anything restores from the store's last checkpoint (the
	// emitter and the later stages do as they are made, in spawnOutputs):
	// each part must resume from the same one.
	if err := recoverCommitted(ctx, cfg); err != nil {
		return Summary{}, err
	}
	if cp, err := cfg.Store.Last(); err == nil {
		cfg.Logger.Info("resuming from checkpoint", "id", cp.ID, "time", cp.Time.Format(time.RFC3339), "keys", cp.Keys)
	}
	if err := e.spawnOutputs(spawn); err != nil {
		return Summary{}, err
	}
	done := make(chan result, 1)
	// The node supervises the partitions itself (node.HandleFailure): a
	// failing partition restarts with backoff, a bounded number of times.
	// It sets e.node itself when it starts, before it spawns anything that
	// reads it.
	nodePID := spawn("the node", newNode(e, done))
	if cfg.OnReady != nil {
		// The node publishes its PID when it starts: hand out the handle
		// once it has.
		go func() {
			select {
			case <-e.ready:
				cfg.OnReady(&Handle{e: e})
			case <-runCtx.Done():
			}
		}()
	}
	sum, err := e.wait(ctx, nodePID, done, g.failed)
	cancel()
	if !e.storeWrites.wait() && err == nil {
		err = fmt.Errorf("a shard's checkpoint write to the store did not end within %v of the run's end", commitStopTimeout)
	}
	if closeErr := closeSinks(cfg); err == nil {
		err = closeErr
	}
	return sum, err
}

// spawnOutputs spawns the actors downstream of the partitions: a writer per
// sink, the emitter, the standby keeper.
func (e *engine) spawnOutputs(spawn func(name string, a actor.Actor) *actor.PID) error {
	cfg := e.cfg
	if cfg.Results != nil {
		e.results = spawn("the results sink", newSinkWriter(e, "results", cfg.Results))
	}
	e.outputs = map[string]*actor.PID{}
	for name, sink := range cfg.outputs() {
		e.outputs[name] = spawn("the "+name+" sink", newSinkWriter(e, name, sink))
	}
	if cfg.DeadLetters != nil {
		e.deadLetters = spawn("the dead-letter sink", newSinkWriter(e, "dead_letter", cfg.DeadLetters))
	}
	if cfg.Late != nil {
		e.late = spawn("the late-records sink", newSinkWriter(e, "late", cfg.Late))
	}
	if cfg.Pipeline.HasAggregate() {
		em, err := newEmitter(e)
		if err != nil {
			return err
		}
		e.emitter = spawn("the emitter", em)
		if err := e.spawnStages(spawn); err != nil {
			return err
		}
	}
	if cfg.Standby > 0 {
		e.standby = spawn("the standby keeper", newStandbyKeeper(e))
	}
	e.transactional = map[string]*actor.PID{}
	for name, sink := range cfg.sinks() {
		if _, ok := sink.(connectors.Transactional); ok {
			e.transactional[name] = e.writer(name)
		}
	}
	return nil
}

// stopAfterGiveUp bounds the wait for the node to end once the run gave up
// on the stop checkpoint and interrupted the script.
const stopAfterGiveUp = 2 * time.Second

// wait runs the trigger timer until the node reports the run's result, a
// top-level actor fails, or a stop asked by ctx has run out of time.
func (e *engine) wait(ctx context.Context, nodePID *actor.PID, done <-chan result, failed <-chan error) (Summary, error) {
	cfg, root := e.cfg, e.system.Root
	ticker := time.NewTicker(cfg.TriggerInterval)
	defer ticker.Stop()
	stop := ctx.Done()
	var grace, hard <-chan time.Time // set once a stop is asked, and once it is given up
	for {
		select {
		case r := <-done:
			if ctx.Err() != nil || r.err != nil {
				// Workers may still be in a script call on records the run
				// left unprocessed: end those calls.
				e.interruptAll(errStopped)
			}
			return r.summary, r.err
		case err := <-failed:
			e.interruptAll(err)
			return e.summary(), err
		case <-ticker.C:
			root.Send(nodePID, &tick{})
		case r := <-cfg.Reload:
			root.Send(nodePID, &r)
		case <-stop:
			stop = nil
			root.Send(nodePID, &shutdown{})
			grace = time.After(cfg.StopTimeout)
		case <-grace:
			grace = nil
			// The node answers with done once it has dropped the stop
			// checkpoint; a script call that holds up a shard ends now.
			root.Send(nodePID, &shutdown{giveUp: cfg.StopTimeout})
			e.interruptAll(errStopped)
			e.cancel()
			hard = time.After(stopAfterGiveUp)
		case <-hard:
			return e.summary(), fmt.Errorf("stopping: the engine did not stop within %v of the signal; the last complete checkpoint (%d) stands", cfg.StopTimeout+stopAfterGiveUp, cfg.Stats.LastCheckpoint.Load())
		}
	}
}

// errStopped is the cause script calls interrupted by a stop fail with.
var errStopped = errors.New("the run is stopping")

// summary is the run's summary from its counters, for a run that ends
// without the node's word.
func (e *engine) summary() Summary {
	st := e.cfg.Stats
	return Summary{Read: st.Read.Load(), Kept: st.Kept.Load(), Failed: st.Failed.Load(),
		Checkpoints: st.Checkpoints.Load(), LastCheckpoint: st.LastCheckpoint.Load(), Interrupted: true}
}

// guardian supervises the tree's top-level actors (node, emitter, sink
// writers, standby keeper): one that fails ends the run with its cause,
// never a silent restart of an actor that holds the run's state.
type guardian struct {
	failed chan error
	mu     sync.Mutex
	names  map[string]string // by PID id
}

func (g *guardian) name(pid *actor.PID, name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.names[pid.Id] = name
}

// HandleFailure implements actor.SupervisorStrategy.
func (g *guardian) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ any) {
	g.mu.Lock()
	name := g.names[child.Id]
	g.mu.Unlock()
	if name == "" {
		name = "an actor of the engine"
	}
	sup.StopChildren(child)
	select {
	case g.failed <- fmt.Errorf("%s failed: %w", name, asError(reason)):
	default: // the first failure is the run's result
	}
}

// asError is a panic's value as an error.
func asError(reason any) error {
	if err, ok := reason.(error); ok {
		return err
	}
	return fmt.Errorf("%v", reason)
}

type result struct {
	summary Summary
	err     error
}

// sinkCloseTimeout bounds closing the sinks at the end of a run.
const sinkCloseTimeout = 10 * time.Second

// closeSinks closes every sink, in turn on a goroutine of its own, and
// gives up waiting after sinkCloseTimeout.
func closeSinks(cfg Config) error {
	errc := make(chan error, 1)
	go func() {
		var errs []error
		for name, s := range cfg.sinks() {
			if err := s.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing sink %s: %w", name, err))
			}
		}
		errc <- errors.Join(errs...)
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(sinkCloseTimeout):
		return fmt.Errorf("the sinks did not close within %v", sinkCloseTimeout)
	}
}

// outputs merges Records into Outputs as "records".
func (c *Config) outputs() map[string]connectors.Sink {
	out := map[string]connectors.Sink{}
	for name, s := range c.Outputs {
		if s != nil {
			out[name] = s
		}
	}
	if c.Records != nil {
		out["records"] = c.Records
	}
	return out
}

// sinks is every sink of the run by output name.
func (c *Config) sinks() map[string]connectors.Sink {
	all := c.outputs()
	if c.Results != nil {
		all["results"] = c.Results
	}
	if c.DeadLetters != nil {
		all["dead_letter"] = c.DeadLetters
	}
	if c.Late != nil {
		all["late"] = c.Late
	}
	return all
}

// writer is the SinkWriter of an output name.
func (e *engine) writer(name string) *actor.PID {
	switch name {
	case "results":
		return e.results
	case "dead_letter":
		return e.deadLetters
	case "late":
		return e.late
	}
	return e.outputs[name]
}

// ownerKey records which pipeline a state directory belongs to, so a run
// can't restore another pipeline's state by a mistyped --state.
var ownerKey = []byte("meta/pipeline")

// watermarkKey holds the event-time watermark of each checkpoint, so a
// restart judges lateness exactly as the run before it did.
var watermarkKey = []byte("meta/watermark")

func checkOwner(cfg Config) error {
	cp, err := cfg.Store.Last()
	if errors.Is(err, state.ErrNoCheckpoint) {
		return nil
	}
	if err != nil {
		return err
	}
	owner, ok, err := cfg.Store.Get(cp.ID, ownerKey)
	if err != nil || !ok {
		return err
	}
	if string(owner) != cfg.Pipeline.Name {
		return fmt.Errorf("the state directory holds checkpoints of pipeline %q, not %q: give this pipeline a --state of its own", owner, cfg.Pipeline.Name)
	}
	return nil
}

// recoverCommitted completes the checkpoint the transactional sinks
// committed when the process died before the store marked it complete: its
// outputs are out, so replaying from the checkpoint before would repeat
// them. With several transactional sinks it takes the oldest commit, so
// nothing is lost (the sinks ahead may repeat a checkpoint's output).
func recoverCommitted(ctx context.Context, cfg Config) error {
	var oldest *connectors.Checkpoint
	for _, s := range cfg.sinks() {
		t, ok := s.(connectors.Transactional)
		if !ok {
			continue
		}
		cp, err := t.Committed(ctx)
		if err != nil {
			return fmt.Errorf("recovering the last commit: %w", err)
		}
		if oldest == nil || cp.ID < oldest.ID {
			oldest = &cp
		}
	}
	if oldest == nil || oldest.ID == 0 {
		return nil
	}
	last, err := cfg.Store.Last()
	switch {
	case errors.Is(err, state.ErrNoCheckpoint):
	case err != nil:
		return err
	case last.ID >= oldest.ID:
		return nil
	}
	pos := map[string][]byte{}
	for id, p := range oldest.Positions {
		pos[id] = p
	}
	cfg.Logger.Info("completing the checkpoint the sinks committed before the last stop", "id", oldest.ID)
	return cfg.Store.Complete(state.Checkpoint{ID: oldest.ID, Time: time.Now().UTC(), Positions: pos})
}

// outputNames lists the record outputs, sorted, for error messages.
func (e *engine) outputNames() []string {
	names := make([]string, 0, len(e.outputs))
	for name := range e.outputs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// minLevel passes records at or above a level to the handler it wraps.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.min}
}
func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{m.Handler.WithGroup(g), m.min} }

// interrupt makes the pipeline's script calls in flight, and those after,
// fail with an error wrapping scripting.ErrInterrupted.
func interrupt(p *scripting.Pipeline, cause error) { p.Interrupt(cause) }

// interrupted says whether a script call failed because the run
// interrupted it: its record is unprocessed, not failed.
func interrupted(err error) bool { return errors.Is(err, scripting.ErrInterrupted) }
