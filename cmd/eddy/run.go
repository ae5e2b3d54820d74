package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/connectors/stdio"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

type runFlags struct {
	source, sink, records, deadLetter, stateDir, emit string
	untilIdle                                         bool
	trigger, checkpoint                               time.Duration
	maxErrors                                         int64
	maxFiles, shards, workers, keep                   int
	maxRecordSize                                     string
	progress                                          bool
	to                                                map[string]string
	cpuProfile                                        string
	httpAddr                                          string
	exactlyOnce                                       bool
	changelog                                         bool
	changelogGiven                                    bool // --changelog was on the command line
	node                                              string
	standby                                           int
	memProfile                                        string
	lookups                                           map[string]string
	resetState                                        bool
	cluster                                           clusterFlags
	luaMemory                                         string
	luaTimeout                                        string
	watch                                             bool
	repartition                                       bool
	repartitionPartitions                             int
	security                                          securityFlags
	// set holds the flags given on the command line, for the checks
	// that treat an explicit value apart from a default.
	set map[string]bool
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
a temporary directory and is gone when the run ends.

A run in which every record read failed, or more than --max-errors did, exits with
status 1.`,
		Example: `  eddy gen netflow --count 100000 --files 4 --out flows
  eddy run scripts/netflow_webservers.lua --source dir:flows --until-idle --emit final
  eddy gen tshark --count 1000 --out en0.log
  eddy run scripts/tshark_ips.lua --source file:en0.log --state tshark-state --until-idle`,
		Args: cobra.ExactArgs(1),
		// Flags are checked before anything else runs (replay rewinds
		// state in its RunE).
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			f.set = map[string]bool{}
			cmd.Flags().Visit(func(fl *pflag.Flag) { f.set[fl.Name] = true })
			return f.validate()
		},
		RunE: func(cmd *cobra.Command, args []string) error { return run(cmd, args[0], f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.source, "source", "", "source URI, overriding the script's: dir:PATH, file:PATH, stdin, gen:NAME?count=N, kafka://HOST:PORT/TOPIC, http(s)://URL (docs/connectors.md)")
	fl.StringVar(&f.sink, "sink", "", "sink URI for the results (or the records, when the pipeline doesn't aggregate), overriding the script's: stdout, stderr, discard, file:PATH.jsonl|.csv, kafka://HOST:PORT/TOPIC, mysql://USER@HOST:PORT/DB/TABLE, cassandra://HOST:PORT/KEYSPACE/TABLE (docs/connectors.md)")
	fl.StringVar(&f.records, "records", "", "also write every kept record to this sink URI")
	fl.StringToStringVar(&f.to, "to", nil, "NAME=URI: the sink of a named output (results, records, dead_letter, or a name the script's route returns); repeatable")
	fl.StringToStringVar(&f.lookups, "lookup", nil, "NAME=URI: read the script's lookup NAME from another table; repeatable")
	fl.StringVar(&f.deadLetter, "dead-letter", "", "sink URI for records that fail (default: the script's, else stderr)")
	fl.StringVar(&f.stateDir, "state", "", "directory for checkpoints; a restart with the same directory resumes (default: a temporary directory)")
	fl.StringVar(&f.emit, "emit", "", "emit mode: update (changed rows per trigger), complete (the whole table at each trigger where a row changed, every row with a trigger field numbering its table), final (once, when the input ends)")
	fl.BoolVar(&f.untilIdle, "until-idle", false, "stop once every source is drained, after emitting the final result")
	fl.DurationVar(&f.trigger, "trigger-interval", time.Second, "the longest time between triggers, at which results are emitted (above 0); a dir: source with --max-files-per-trigger also triggers each time it has read that many files, however soon, and the end of the input triggers once more (docs/pipelines.md)")
	fl.DurationVar(&f.checkpoint, "checkpoint-interval", 5*time.Second, "how often state is checkpointed (above 0; checkpoints are taken at triggers, so at least --trigger-interval)")
	fl.Int64Var(&f.maxErrors, "max-errors", -1, "stop the run when more than N records fail (-1: no limit)")
	fl.IntVar(&f.maxFiles, "max-files-per-trigger", 0, "dir: sources read at most N files between triggers (0: no limit)")
	fl.IntVar(&f.shards, "shards", 0, fmt.Sprintf("keyed-aggregation actors per partition, 1 to %d (default: number of CPUs)", maxActors))
	fl.IntVar(&f.workers, "workers", 0, fmt.Sprintf("parse workers (Lua states) per partition, 1 to %d (default: number of CPUs)", maxActors))
	fl.IntVar(&f.keep, "keep", 5, "complete checkpoints to keep (at least 1)")
	fl.StringVar(&f.maxRecordSize, "max-record-size", "16MiB", "dir:, file: and stdin sources: a longer line goes to the dead letters as a 1 KiB preview with its size (1B to 1GiB)")
	fl.BoolVar(&f.resetState, "reset-state", false, "delete every checkpoint and savepoint in --state first and start over from nothing (the whole input is read again)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to `FILE`, for go tool pprof")
	fl.StringVar(&f.memProfile, "memprofile", "", "write a Go heap profile to `FILE` when the run ends, for go tool pprof")
	fl.BoolVar(&f.progress, "progress", true, "show progress on stderr when it is a terminal")
	fl.BoolVar(&f.exactlyOnce, "exactly-once", false, "kafka:// sinks write in transactions committed with each checkpoint (see docs/kafka.md)")
	fl.BoolVar(&f.changelog, "changelog", true, "with a kafka:// source, write every checkpoint's state changes to a changelog topic so partitions take their state to whichever node reads them next (see docs/cluster.md)")
	fl.IntVar(&f.standby, "standby", 0, "keep warm copies of partitions other nodes read, so each has up to N copies besides its owner's: a failover then reads only the latest changes (see docs/cluster.md)")
	fl.StringVar(&f.node, "node", "", "this node's name in changelogs and cluster status (default: the source's instance, else HOST-PID)")
	fl.StringVar(&f.httpAddr, "http", "", "serve status and live state on this address (HOST:PORT; a bare :PORT is 127.0.0.1 only, 0.0.0.0:PORT every interface): a live web page at /, eddy status, eddy query, GET /status, /state, /state/KEY, Prometheus metrics at /metrics (clustered: default 127.0.0.1 and any free port; see docs/observability.md, and docs/security.md for a token and HTTPS)")
	fl.StringVar(&f.luaMemory, "lua-memory", "", "memory each Lua state may hold, such as 128MiB, overriding the script's memory_limit (default 64MiB)")
	fl.StringVar(&f.luaTimeout, "lua-timeout", "", "how long one call into the script may run, overriding the script's call_timeout (default 2s)")
	fl.BoolVar(&f.watch, "watch", false, "reload the script when its file changes (SIGHUP reloads it in any case); a new version with the same key, aggregates and windows takes over at the next checkpoint, any other is refused and the running one goes on")
	fl.BoolVar(&f.repartition, "repartition", false, "kafka:// sources: re-key the records through a repartition topic (eddy-repartition.GROUP.1), so a join or an aggregate over topics not partitioned by its key runs on several nodes, each key's state on one (see docs/cluster.md)")
	fl.IntVar(&f.repartitionPartitions, "repartition-partitions", 0, "with --repartition, the repartition topic's partitions when eddy creates it (default: the most of any source topic)")
	addClusterFlags(fl, &f.cluster)
	addSecurityFlags(fl, &f.security)
	return cmd
}

// maxActors bounds --shards and --workers: each is an actor (a worker also
// a Lua state) per partition, and far more than the cores only costs memory.
const maxActors = 1024

// validate refuses a flag value outside its range, naming the flag, the
// value and the range: a bad value is never replaced by a default.
func (f runFlags) validate() error {
	checks := []struct {
		bad       bool
		flag, val string
		want      string
	}{
		{f.trigger <= 0, "--trigger-interval", f.trigger.String(), "a duration above 0, such as 500ms or 2s"},
		{f.checkpoint <= 0, "--checkpoint-interval", f.checkpoint.String(), "a duration above 0, such as 5s"},
		{f.maxErrors < -1, "--max-errors", strconv.FormatInt(f.maxErrors, 10), "-1 (no limit) or a count of 0 or more"},
		{f.maxFiles < 0, "--max-files-per-trigger", strconv.Itoa(f.maxFiles), "0 (no limit) or more"},
		{f.set["shards"] && (f.shards < 1 || f.shards > maxActors), "--shards", strconv.Itoa(f.shards), fmt.Sprintf("1 to %d", maxActors)},
		{f.set["workers"] && (f.workers < 1 || f.workers > maxActors), "--workers", strconv.Itoa(f.workers), fmt.Sprintf("1 to %d", maxActors)},
		{f.keep < 1, "--keep", strconv.Itoa(f.keep), "1 or more"},
		{f.standby < 0, "--standby", strconv.Itoa(f.standby), "0 or more"},
		{f.cluster.port < 0 || f.cluster.port > 65535, "--cluster-port", strconv.Itoa(f.cluster.port), "0 to 65535"},
		{f.repartitionPartitions < 0, "--repartition-partitions", strconv.Itoa(f.repartitionPartitions), "1 or more (0: the most of any source topic)"},
	}
	for _, c := range checks {
		if c.bad {
			return fmt.Errorf("%s %s: want %s", c.flag, c.val, c.want)
		}
	}
	if f.set["checkpoint-interval"] && f.set["trigger-interval"] && f.checkpoint < f.trigger {
		return fmt.Errorf("--checkpoint-interval %s is shorter than --trigger-interval %s: checkpoints are taken at triggers, so want at least %s", f.checkpoint, f.trigger, f.trigger)
	}
	if _, err := connectors.ParseSize("--max-record-size", f.maxRecordSize, 1, connectors.MaxRecordSizeLimit); err != nil {
		return err
	}
	return nil
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

// run is eddy run once its flags are checked: load the pipeline, open its
// source, sinks, changelog and state, run it, and report how it ended.
// What it opens is closed in reverse order when it returns.
func run(cmd *cobra.Command, path string, f runFlags) (err error) {
	log := slog.Default()
	f.changelogGiven = cmd.Flags().Changed("changelog")
	unconfine, err := f.security.confine()
	if err != nil {
		return err
	}
	defer unconfine()
	p, err := loadPipeline(path, f, log)
	if err != nil {
		return err
	}
	closeTables, err := p.OpenTables(cmd.Context(), tableOptions(f)...) // tables read to their end before the first record
	if err != nil {
		return err
	}
	defer closeTables()
	if f.repartition && len(p.Stages) > 0 {
		return runStages(cmd, p, f, log) // (repartition_stages.go)
	}
	ctx := cmd.Context()
	var srcURI string
	var src connectors.Source
	if f.repartition {
		var sh *shuffler
		srcURI, src, sh, err = openRepartitioned(ctx, p, f, log) // (repartition.go)
		if err != nil {
			return err
		}
		defer sh.Close()
		var stop context.CancelFunc
		ctx, stop = shufflerStops(ctx, sh)
		defer stop()
		defer func() {
			if serr := sh.Err(); serr != nil {
				err = serr
			}
		}()
	} else if srcURI, src, err = openSource(p, f); err != nil {
		return err
	}
	defer src.Close()
	cfg := actors.Config{
		Pipeline: p, Source: src, UntilIdle: f.untilIdle, MaxErrors: f.maxErrors, Shards: f.shards, Workers: f.workers,
		TriggerInterval: f.trigger, CheckpointInterval: f.checkpoint, Logger: log, Stats: &actors.Stats{},
		Node: nodeName(f.node, srcURI),
	}
	if err := cfg.CheckStages(); err != nil {
		return err
	}
	reloads, stopWatching := watchScript(cmd.Context(), path, p.Hash, f, log)
	defer stopWatching()
	cfg.Reload = reloads
	local := &lateLocal{}
	stopServing, err := serve(cmd.Context(), log, f, p.Name, srcURI, &cfg, local)
	if err != nil {
		return err
	}
	defer stopServing()
	sinks := &sinkSet{exactlyOnce: f.exactlyOnce, pipeline: p.Name, source: srcURI}
	defer sinks.closeUnused()
	if err := openSinks(&cfg, p, f, sinks); err != nil {
		return err
	}
	info := describe(p, cfg, srcURI, sinks)
	local.info.Store(&info)
	if f.exactlyOnce && !anyTransactional(cfg) {
		log.Warn("--exactly-once: no kafka:// sink; stdout and files stay at-least-once across a crash")
	}
	closeChangelog, err := openChangelog(&cfg, src, f, log)
	if err != nil {
		return err
	}
	defer closeChangelog()
	closeStore, err := openStore(&cfg, f, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closeStore(); err == nil {
			err = cerr
		}
	}()
	sum, err := execute(ctx, cfg, f, srcURI, src, sinks)
	if err != nil {
		return err
	}
	return report(log, sum)
}

// execute runs the engine, with the profiles and the progress line the
// flags ask for.
func execute(ctx context.Context, cfg actors.Config, f runFlags, srcURI string, src connectors.Source, sinks *sinkSet) (actors.Summary, error) {
	stopProfiles, err := startProfiles(f)
	if err != nil {
		return actors.Summary{}, err
	}
	defer stopProfiles()
	_, lastErr := cfg.Store.Last()
	lag := &lagProbe{}
	ready := cfg.OnReady // (--http's, when given)
	cfg.OnReady = func(h *actors.Handle) {
		lag.h.Store(h)
		if ready != nil {
			ready(h)
		}
	}
	stopProgress := startProgress(tty, f.progress, cfg.Stats, inputTotal(srcURI, lastErr == nil), src, lag)
	defer stopProgress()
	sum, err := actors.Run(ctx, cfg)
	sinks.closed = true // Run closed them
	return sum, err
}

// loadPipeline loads the script and applies the flags that change it.
func loadPipeline(path string, f runFlags, log *slog.Logger) (*scripting.Pipeline, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	return loadPipelineSource(path, src, f, log)
}

// loadPipelineSource is loadPipeline for the script's content src.
func loadPipelineSource(path string, src []byte, f runFlags, log *slog.Logger) (*scripting.Pipeline, error) {
	opts, err := f.loadOptions(log)
	if err != nil {
		return nil, err
	}
	p, err := scripting.LoadSource(path, src, opts...)
	if err != nil {
		return nil, err
	}
	if f.emit != "" {
		if err := p.SetEmit(f.emit); err != nil {
			return nil, err
		}
	}
	for name, uri := range f.lookups {
		if err := p.SetLookupSource(name, uri); err != nil {
			return nil, err
		}
	}
	if err := checkLookups(p); err != nil {
		return nil, err
	}
	return p, checkTriggerColumn(p)
}

// checkTriggerColumn refuses a complete-mode pipeline with a result column
// of the name that numbers each table's rows.
func checkTriggerColumn(p *scripting.Pipeline) error {
	if last := p.Last(); last.Emit == scripting.EmitComplete && slices.Contains(last.Columns(), actors.TriggerColumn) {
		return fmt.Errorf("%s: emit complete numbers each table's rows in a column %q, and the result has a column of that name: rename it", p.Script, actors.TriggerColumn)
	}
	return nil
}

// openSource opens the source --source or the script names, with the
// flags that set its parameters; it returns the URI it opened.
func openSource(p *scripting.Pipeline, f runFlags) (string, connectors.Source, error) {
	if p.HasSources() {
		return openSources(p, f) // (sources.go)
	}
	srcURI := first(f.source, p.Source)
	if srcURI == "" {
		return "", nil, fmt.Errorf("%s names no source: give one with --source (for example --source dir:DATA or --source gen:netflow?count=1000)", p.Script)
	}
	srcURI = kafka.WithDefaultGroup(srcURI, p.Name)
	t, err := connectors.Parse(srcURI)
	if err != nil {
		return "", nil, err
	}
	extra := connectors.Params{}
	for _, fp := range []struct {
		flag, param, val string
		given            bool
	}{
		{"--max-files-per-trigger", "max-files-per-trigger", strconv.Itoa(f.maxFiles), f.maxFiles > 0},
		{"--max-record-size", connectors.MaxRecordSizeParam, f.maxRecordSize, f.set["max-record-size"]},
	} {
		if !fp.given {
			continue
		}
		if !connectors.Accepts("source", t.Scheme, fp.param) {
			return "", nil, fmt.Errorf("%s %s: a %s: source has no such setting (it is for dir:, file: and stdin sources)", fp.flag, fp.val, t.Scheme)
		}
		extra.Set(fp.param, fp.val)
	}
	src, err := connectors.OpenSource(srcURI, extra)
	if err != nil {
		return "", nil, err
	}
	if t.Scheme == "kafka" && len(p.Stages) > 0 {
		// Later stages see every partition's rows: one partition of all
		// (sources.go).
		src, err = wholeKafka(src)
	}
	return srcURI, src, err
}

// openSinks opens the run's outputs: results or records, late records,
// the named outputs a route or key hook sends to, and dead letters.
func openSinks(cfg *actors.Config, p *scripting.Pipeline, f runFlags, sinks *sinkSet) error {
	var err error
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
	if p.IsWindowed() || p.HasJoin() {
		if cfg.Late, err = sinks.open(first(f.to["late"], p.Sinks["late"], "stderr")); err != nil {
			return err
		}
	}
	if err := openOutputs(cfg, p, f, sinks); err != nil {
		return err
	}
	cfg.DeadLetters, err = sinks.open(first(f.to["dead_letter"], f.deadLetter, p.Sinks["dead_letter"], "stderr"))
	return err
}

// openOutputs opens the named outputs, and refuses a --to naming none.
func openOutputs(cfg *actors.Config, p *scripting.Pipeline, f runFlags, sinks *sinkSet) error {
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
			var err error
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
	return nil
}

// openChangelog gives a Kafka source's run its changelog (and standby
// copies), sharing the sinks' transactions with exactly-once.
func openChangelog(cfg *actors.Config, src connectors.Source, f runFlags, log *slog.Logger) (closeIt func(), err error) {
	if f.standby > 0 && !(f.changelog && isChangelogSource(src)) {
		return nil, fmt.Errorf("--standby %d keeps copies of other nodes' partitions through their changelog: it needs a kafka:// source, without --changelog=false", f.standby)
	}
	if _, whole := src.(inProcessKafka); whole && f.changelogGiven && f.changelog {
		return nil, fmt.Errorf("--changelog: %s reads its Kafka topics whole in one process (stages or several sources), which keeps its state in --state and writes no changelog; drop --changelog (see docs/kafka.md)", cfg.Pipeline.Script)
	}
	cs, ok := src.(connectors.ChangelogSource)
	if !ok || !f.changelog {
		return func() {}, nil
	}
	cl, err := cs.Changelog(cfg.Pipeline.Name)
	if err != nil {
		return nil, err
	}
	cfg.Changelog, cfg.Standby = cl, f.standby
	if sh, ok := cl.(connectors.ChangelogSharer); ok && f.exactlyOnce {
		for _, t := range transactionalSinks(*cfg) {
			if sh.ShareTransaction(t) {
				cfg.ChangelogShared = true
				break
			}
		}
		if !cfg.ChangelogShared {
			log.Warn("--exactly-once: the changelog commits apart from the sinks (no kafka:// sink on the source's brokers): output may repeat when a partition moves after a crash")
		}
	}
	return func() { cl.Close() }, nil
}

// tableOptions keep the pipeline's tables in --state when it is given;
// without it they are read into memory, as the state is kept only for the
// run.
func tableOptions(f runFlags) []scripting.TableOption {
	if f.stateDir == "" {
		return nil
	}
	return []scripting.TableOption{scripting.KeepTablesIn(f.stateDir)}
}

// openStore opens --state, or a temporary directory removed when the run
// ends.
// Its close function's error (a full disk) is the run's.
func openStore(cfg *actors.Config, f runFlags, log *slog.Logger) (closeIt func() error, err error) {
	dir, cleanup := f.stateDir, func() {}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "eddy-state-"); err != nil {
			return nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		log.Debug("no --state: state is kept only for this run", "dir", dir)
	}
	if f.resetState {
		if f.stateDir == "" {
			return nil, fmt.Errorf("--reset-state needs --state DIR, the directory to start over in")
		}
		if err := state.Reset(dir); err != nil {
			cleanup()
			return nil, err
		}
		log.Warn("--reset-state: deleted every checkpoint and savepoint; starting over from nothing", "dir", dir)
	}
	store, err := openState(dir, state.WithKeep(f.keep), state.WithLogger(log))
	if err != nil {
		cleanup()
		return nil, err
	}
	cfg.Store = store
	return func() error { defer cleanup(); return store.Close() }, nil
}

// startProfiles starts --cpuprofile; the function it returns stops it and
// writes --memprofile.
func startProfiles(f runFlags) (stop func(), err error) {
	var stops []func()
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return nil, err
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); pf.Close() })
	}
	if f.memProfile != "" {
		stops = append(stops, func() {
			if pf, err := os.Create(f.memProfile); err == nil {
				runtime.GC()
				pprof.WriteHeapProfile(pf)
				pf.Close()
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}, nil
}

// errAllFailed is returned when every record a run read failed: its
// result says nothing, and exit 0 would pass it off as one.
var errAllFailed = errors.New("every record failed")

// report logs how the run ended, and fails it when every record read
// failed.
func report(log *slog.Logger, sum actors.Summary) error {
	if sum.Read > 0 && sum.Failed >= sum.Read {
		return fmt.Errorf("%w: all %d records read went to the dead-letter output (see the reasons there)", errAllFailed, sum.Read)
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
	k, err := openSink(open)
	if err != nil {
		return nil, err
	}
	if _, ok := k.(connectors.Transactional); !ok {
		k = &sharedSink{Sink: k}
	}
	s.byURI[uri] = k
	return k, nil
}

// openSink opens a sink; stdout and stderr write through the console, so
// their lines never share one with the progress line.
func openSink(uri string) (connectors.Sink, error) {
	switch uri {
	case "stdout":
		return stdio.NewSink(tty.Stdout(), "stdout"), nil
	case "stderr":
		return stdio.NewSink(tty.Stderr(), "stderr"), nil
	}
	return connectors.OpenSink(uri)
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

// Retries passes on the sink's retries (connectors.Retrier), 0 for a sink
// that doesn't retry.
func (s *sharedSink) Retries() int64 {
	if r, ok := s.Sink.(connectors.Retrier); ok {
		return r.Retries()
	}
	return 0
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
