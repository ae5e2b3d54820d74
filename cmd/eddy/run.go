package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

type runFlags struct {
	source, sink, records, deadLetter, stateDir, emit string
	untilIdle                                         bool
	trigger, checkpoint                               time.Duration
	maxErrors                                         int64
	maxFiles, shards, workers, keep                   int
	progress                                          bool
	to                                                map[string]string
	cpuProfile                                        string
	httpAddr                                          string
	exactlyOnce                                       bool
	changelog                                         bool
	node                                              string
	standby                                           int
	memProfile                                        string
	lookups                                           map[string]string
	cluster                                           clusterFlags
	luaMemory                                         string
	luaTimeout                                        string
}

func runCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run PIPELINE.lua",
		Short: "run a pipeline",
		Long: `Run a pipeline until its input ends (or, with --until-idle, until every source is drained),
or until interrupted (Ctrl-C checkpoints and stops cleanly).

Results go to stdout unless the script or --sink names another sink; logs, progress and
dead letters go to stderr. With --state DIR, state and source positions are checkpointed
there and a restart resumes from the last complete checkpoint; without it, state lives in
a temporary directory and is gone when the run ends.`,
		Example: `  eddy gen netflow --count 100000 --files 4 --out flows
  eddy run scripts/netflow_webservers.lua --source dir:flows --until-idle --emit final
  eddy run scripts/tshark_ips.lua --source file:/tmp/en0.log --state /var/lib/eddy/tshark`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return run(cmd, args[0], f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.source, "source", "", "source URI, overriding the script's (dir:PATH, file:PATH, stdin, gen:NAME?count=N)")
	fl.StringVar(&f.sink, "sink", "", "sink URI for the results (or the records, when the pipeline doesn't aggregate), overriding the script's (stdout, file:PATH.jsonl|.csv)")
	fl.StringVar(&f.records, "records", "", "also write every kept record to this sink URI")
	fl.StringToStringVar(&f.to, "to", nil, "NAME=URI: the sink of a named output (results, records, dead_letter, or a name the script's route returns); repeatable")
	fl.StringToStringVar(&f.lookups, "lookup", nil, "NAME=URI: read the script's lookup NAME from another table; repeatable")
	fl.StringVar(&f.deadLetter, "dead-letter", "", "sink URI for records that fail (default: the script's, else stderr)")
	fl.StringVar(&f.stateDir, "state", "", "directory for checkpoints; a restart with the same directory resumes (default: a temporary directory)")
	fl.StringVar(&f.emit, "emit", "", "emit mode: update (changed rows per trigger), complete (whole table per trigger), final (once, when the input ends)")
	fl.BoolVar(&f.untilIdle, "until-idle", false, "stop once every source is drained, after emitting the final result")
	fl.DurationVar(&f.trigger, "trigger-interval", time.Second, "how often results are emitted")
	fl.DurationVar(&f.checkpoint, "checkpoint-interval", 5*time.Second, "how often state is checkpointed")
	fl.Int64Var(&f.maxErrors, "max-errors", -1, "stop the run when more than N records fail (-1: no limit)")
	fl.IntVar(&f.maxFiles, "max-files-per-trigger", 0, "dir: sources read at most N files between triggers (0: no limit)")
	fl.IntVar(&f.shards, "shards", 0, "keyed-aggregation actors per partition (default: number of CPUs)")
	fl.IntVar(&f.workers, "workers", 0, "parse workers (Lua states) per partition (default: number of CPUs)")
	fl.IntVar(&f.keep, "keep", 5, "complete checkpoints to keep")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to this file (for `go tool pprof`)")
	fl.StringVar(&f.memProfile, "memprofile", "", "write a Go heap profile to this file when the run ends (for `go tool pprof`)")
	fl.BoolVar(&f.progress, "progress", true, "show progress on stderr when it is a terminal")
	fl.BoolVar(&f.exactlyOnce, "exactly-once", false, "kafka:// sinks write in transactions committed with each checkpoint (see docs/kafka.md)")
	fl.BoolVar(&f.changelog, "changelog", true, "with a kafka:// source, write every checkpoint's state changes to a changelog topic so partitions take their state to whichever node reads them next (see docs/cluster.md)")
	fl.IntVar(&f.standby, "standby", 0, "keep warm copies of partitions other nodes read, so each has up to N copies besides its owner's: a failover then reads only the latest changes (see docs/cluster.md)")
	fl.StringVar(&f.node, "node", "", "this node's name in changelogs and cluster status (default: the source's instance, else HOST-PID)")
	fl.StringVar(&f.httpAddr, "http", "", "serve status and live state on this address (HOST:PORT): eddy status, eddy query, GET /status, /state, /state/KEY (clustered: default 127.0.0.1 and any free port)")
	fl.StringVar(&f.luaMemory, "lua-memory", "", "memory each Lua state may hold, such as 128MiB, overriding the script's memory_limit (default 64MiB)")
	fl.StringVar(&f.luaTimeout, "lua-timeout", "", "how long one call into the script may run, overriding the script's call_timeout (default 2s)")
	addClusterFlags(fl, &f.cluster)
	return cmd
}

// loadOptions are the scripting options the run flags ask for.
func (f runFlags) loadOptions(log *slog.Logger) ([]scripting.LoadOption, error) {
	opts := []scripting.LoadOption{scripting.WithLogger(log)}
	if f.luaMemory != "" {
		n, err := scripting.ParseSize(f.luaMemory)
		if err != nil {
			return nil, fmt.Errorf("--lua-memory: %w", err)
		}
		if n < scripting.MinMemoryLimit {
			return nil, fmt.Errorf("--lua-memory: %s is below the least a Lua state needs, 1MiB", f.luaMemory)
		}
		opts = append(opts, scripting.WithMemoryLimit(n))
	}
	if f.luaTimeout != "" {
		d, err := time.ParseDuration(f.luaTimeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--lua-timeout: want a positive duration such as 500ms or 5s, got %q", f.luaTimeout)
		}
		opts = append(opts, scripting.WithCallTimeout(d))
	}
	return opts, nil
}

func run(cmd *cobra.Command, path string, f runFlags) error {
	log := slog.Default()
	opts, err := f.loadOptions(log)
	if err != nil {
		return err
	}
	p, err := scripting.Load(path, opts...)
	if err != nil {
		return err
	}
	if f.emit != "" {
		if err := p.SetEmit(f.emit); err != nil {
			return err
		}
	}
	for name, uri := range f.lookups {
		if err := p.SetLookupSource(name, uri); err != nil {
			return err
		}
	}
	srcURI := first(f.source, p.Source)
	if srcURI == "" {
		return fmt.Errorf("%s names no source: give one with --source (for example --source dir:DATA or --source gen:netflow?count=1000)", p.Script)
	}
	srcURI = kafka.WithDefaultGroup(srcURI, p.Name)
	extra := connectors.Params{}
	if f.maxFiles > 0 {
		extra.Set("max-files-per-trigger", strconv.Itoa(f.maxFiles))
	}
	src, err := connectors.OpenSource(srcURI, extra)
	if err != nil {
		return err
	}
	defer src.Close()

	cfg := actors.Config{
		Pipeline: p, Source: src, UntilIdle: f.untilIdle, MaxErrors: f.maxErrors, Shards: f.shards, Workers: f.workers,
		TriggerInterval: f.trigger, CheckpointInterval: f.checkpoint, Logger: log, Stats: &actors.Stats{},
	}
	stopServing, err := serve(cmd.Context(), log, f, p.Name, srcURI, &cfg)
	if err != nil {
		return err
	}
	defer stopServing()
	sinks := &sinkSet{exactlyOnce: f.exactlyOnce, pipeline: p.Name, source: srcURI}
	defer sinks.closeUnused()
	main := first(f.sink, p.Sinks["main"])
	if p.HasAggregate() {
		if cfg.Results, err = sinks.open(first(f.to["results"], main, p.Sinks["results"], "stdout")); err != nil {
			return err
		}
		if uri := first(f.to["records"], f.records, p.Sinks["records"]); uri != "" {
			if cfg.Records, err = sinks.open(uri); err != nil {
				return err
			}
		}
	} else if cfg.Records, err = sinks.open(first(f.to["records"], main, f.records, p.Sinks["records"], "stdout")); err != nil {
		return err
	}
	if p.IsWindowed() {
		if cfg.Late, err = sinks.open(first(f.to["late"], p.Sinks["late"], "stderr")); err != nil {
			return err
		}
	}
	if p.HasRoute() || p.HasKeyHooks() {
		cfg.Outputs = map[string]connectors.Sink{}
		for _, name := range p.Outputs() {
			if name == "records" {
				continue
			}
			uri := first(f.to[name], p.Sinks[name])
			if uri == "" {
				return fmt.Errorf("%s: sink %q has no URI: set it in sinks or with --to %s=URI", p.Script, name, name)
			}
			if cfg.Outputs[name], err = sinks.open(uri); err != nil {
				return err
			}
		}
	}
	for name := range f.to {
		switch name {
		case "results", "records", "dead_letter", "late":
		default:
			if _, ok := cfg.Outputs[name]; !ok {
				return fmt.Errorf("--to %s: %s has no output of that name (outputs: %s)", name, p.Script, strings.Join(append([]string{"results", "dead_letter"}, p.Outputs()...), ", "))
			}
		}
	}
	if cfg.DeadLetters, err = sinks.open(first(f.to["dead_letter"], f.deadLetter, p.Sinks["dead_letter"], "stderr")); err != nil {
		return err
	}

	if f.exactlyOnce && !anyTransactional(cfg) {
		log.Warn("--exactly-once: no kafka:// sink; stdout and files stay at-least-once across a crash")
	}
	cfg.Node = nodeName(f.node, srcURI)
	if f.standby > 0 && !(f.changelog && isChangelogSource(src)) {
		return fmt.Errorf("--standby %d keeps copies of other nodes' partitions through their changelog: it needs a kafka:// source, without --changelog=false", f.standby)
	}
	if cs, ok := src.(connectors.ChangelogSource); ok && f.changelog {
		cl, err := cs.Changelog(p.Name)
		if err != nil {
			return err
		}
		defer cl.Close()
		cfg.Changelog, cfg.Standby = cl, f.standby
		if sh, ok := cl.(connectors.ChangelogSharer); ok && f.exactlyOnce {
			for _, t := range transactionalSinks(cfg) {
				if sh.ShareTransaction(t) {
					cfg.ChangelogShared = true
					break
				}
			}
			if !cfg.ChangelogShared {
				log.Warn("--exactly-once: the changelog commits apart from the sinks (no kafka:// sink on the source's brokers): output may repeat when a partition moves after a crash")
			}
		}
	}
	dir := f.stateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "eddy-state-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		log.Debug("no --state: state is kept only for this run", "dir", dir)
	}
	store, err := state.Open(dir, state.WithKeep(f.keep), state.WithLogger(log))
	if err != nil {
		return err
	}
	defer store.Close()
	cfg.Store = store
	if cp, err := store.Last(); err == nil {
		log.Info("resuming from checkpoint", "id", cp.ID, "time", cp.Time.Format(time.RFC3339), "keys", cp.Keys)
	}

	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	stopProgress := startProgress(cmd.ErrOrStderr(), f.progress, cfg.Stats)
	if f.memProfile != "" {
		defer func() {
			if pf, err := os.Create(f.memProfile); err == nil {
				runtime.GC()
				pprof.WriteHeapProfile(pf)
				pf.Close()
			}
		}()
	}
	sum, err := actors.Run(cmd.Context(), cfg)
	stopProgress()
	sinks.closed = true // Run closed them
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		log.Warn("some records failed and went to the dead-letter output", "failed", sum.Failed, "read", sum.Read)
	}
	if sum.Interrupted {
		log.Info("stopped", "checkpoint", sum.LastCheckpoint, "read", sum.Read)
	}
	log.Debug("done", "read", sum.Read, "kept", sum.Kept, "failed", sum.Failed, "checkpoints", sum.Checkpoints)
	return nil
}

func isChangelogSource(s connectors.Source) bool {
	_, ok := s.(connectors.ChangelogSource)
	return ok
}

// nodeName is what a node calls itself: --node, else the Kafka source's
// static instance, else host-pid.
func nodeName(flag, src string) string {
	if flag != "" {
		return flag
	}
	if t, err := connectors.Parse(src); err == nil && t.Params.Get("instance") != "" {
		return t.Params.Get("instance")
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// transactionalSinks lists the run's transactional sinks, by name.
func transactionalSinks(cfg actors.Config) []connectors.Transactional {
	var out []connectors.Transactional
	all := map[string]connectors.Sink{"results": cfg.Results, "records": cfg.Records, "dead_letter": cfg.DeadLetters, "late": cfg.Late}
	for name, s := range cfg.Outputs {
		all["to "+name] = s
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if t, ok := all[n].(connectors.Transactional); ok {
			out = append(out, t)
		}
	}
	return out
}

// sinkSet opens each sink URI once: a URI named for two outputs (results
// and dead letters both on stdout) is one sink, shared under a lock. With
// exactly-once, kafka:// sinks are transactional: each output needs a topic
// of its own, and the engine gets the sink itself (it commits it).
type sinkSet struct {
	exactlyOnce      bool
	pipeline, source string
	byURI            map[string]connectors.Sink
	closed           bool
}

func (s *sinkSet) open(uri string) (connectors.Sink, error) {
	if s.byURI == nil {
		s.byURI = map[string]connectors.Sink{}
	}
	t, err := connectors.Parse(uri)
	if err != nil {
		return nil, err
	}
	tx := t.Scheme == "kafka" && (s.exactlyOnce || t.Params.Get("exactly-once") == "true")
	if k, ok := s.byURI[uri]; ok {
		if tx {
			return nil, fmt.Errorf("two outputs write %s: with exactly-once give each its own topic", uri)
		}
		return k, nil
	}
	open := uri
	if tx {
		open = s.transactional(t)
	}
	k, err := connectors.OpenSink(open)
	if err != nil {
		return nil, err
	}
	if _, ok := k.(connectors.Transactional); !ok {
		k = &sharedSink{Sink: k}
	}
	s.byURI[uri] = k
	return k, nil
}

// txnSuffix keeps a replay's transactional ids apart from the pipeline's.
var txnSuffix string

// transactional is the URI of a Kafka sink written in transactions: named
// for the pipeline and, when several processes share the source's group,
// for the process (the source's static instance), so a restarted process
// fences its own dead predecessor and nobody else.
func (s *sinkSet) transactional(t connectors.Target) string {
	t.Params.Set("exactly-once", "true")
	if t.Params.Get("pipeline") == "" {
		t.Params.Set("pipeline", s.pipeline)
	}
	suffix := txnSuffix
	if group, ok := kafka.GroupOf(s.source); ok {
		t.Params.Set("source-group", group)
		if st, err := connectors.Parse(s.source); err == nil && st.Params.Get("instance") != "" {
			suffix = "." + st.Params.Get("instance") + suffix
		}
	}
	if id := t.Params.Get("transactional-id"); id != "" || suffix != "" {
		if id == "" {
			id = "eddy." + s.pipeline + "." + t.Path
		}
		t.Params.Set("transactional-id", id+suffix)
	}
	return "kafka://" + t.Host + "/" + t.Path + "?" + t.Params.Encode()
}

// sharedSink serialises calls from several writers and closes once.
type sharedSink struct {
	mu sync.Mutex
	connectors.Sink
	once sync.Once
}

func (s *sharedSink) Write(ctx context.Context, rows []connectors.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Sink.Write(ctx, rows)
}

func (s *sharedSink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Sink.Flush(ctx)
}

func (s *sharedSink) Close() (err error) {
	s.once.Do(func() { err = s.Sink.Close() })
	return err
}

func (s *sinkSet) closeUnused() {
	if s.closed {
		return
	}
	for _, k := range s.byURI {
		k.Close()
	}
}

func anyTransactional(cfg actors.Config) bool {
	all := []connectors.Sink{cfg.Results, cfg.Records, cfg.DeadLetters, cfg.Late}
	for _, k := range cfg.Outputs {
		all = append(all, k)
	}
	for _, k := range all {
		if _, ok := k.(connectors.Transactional); ok {
			return true
		}
	}
	return false
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
