package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

func replayCmd() *cobra.Command {
	cmd := withExactlyOnce(runCmd())
	var fromCheckpoint uint64
	var fromSavepoint, fromOffset, fromTime string
	cmd.Use = "replay PIPELINE.lua (--from-checkpoint ID | --from-savepoint NAME | --from-offset earliest|N | --from-time RFC3339)"
	cmd.Short = "run a pipeline again from a checkpoint, a savepoint, an offset or a time"
	cmd.Long = `Replay runs a pipeline again from an earlier point, then on as eddy run does.

From a checkpoint or a savepoint (--state DIR names the pipeline's state directory): the
state directory gets a new checkpoint identical to that one, state and source positions,
and the run restores it. The checkpoints in between stay listed. The pipeline must not be
running on that directory.

From an offset or a time (Kafka sources only): the run starts with empty state, every
partition at that offset (earliest, or a number) or at the first record at or after that
time, in a consumer group of its own so a live run of the pipeline is not disturbed.
--state must then name a new or empty directory (or be left out: a temporary one).

Sinks are as for eddy run; --sink sends the replay's results elsewhere.`
	cmd.Example = `  eddy checkpoints list --state /var/lib/eddy/netflow
  eddy replay scripts/netflow_webservers.lua --state /var/lib/eddy/netflow --from-checkpoint 12 --until-idle
  eddy replay scripts/netflow_webservers.lua --source kafka://127.0.0.1:9092/flows --from-time 2026-11-25T08:00:00Z --until-idle --sink file:replayed.jsonl`
	fl := cmd.Flags()
	fl.Uint64Var(&fromCheckpoint, "from-checkpoint", 0, "restore this checkpoint of --state and run on from it")
	fl.StringVar(&fromSavepoint, "from-savepoint", "", "restore this savepoint of --state and run on from it")
	fl.StringVar(&fromOffset, "from-offset", "", "Kafka: start every partition at this offset (earliest or a number), with empty state")
	fl.StringVar(&fromTime, "from-time", "", "Kafka: start every partition at the first record at or after this RFC 3339 time, with empty state")
	inner := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		n := 0
		for _, set := range []bool{fromCheckpoint > 0, fromSavepoint != "", fromOffset != "", fromTime != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("replay needs exactly one of --from-checkpoint, --from-savepoint, --from-offset, --from-time")
		}
		dir, _ := c.Flags().GetString("state")
		if fromCheckpoint > 0 || fromSavepoint != "" {
			if err := rewind(dir, fromCheckpoint, fromSavepoint); err != nil {
				return err
			}
			return withLag(c, args[0], func() error { return inner(c, args) })
		}
		if err := emptyState(dir); err != nil {
			return err
		}
		src, err := replaySource(c, args[0], fromOffset, fromTime)
		if err != nil {
			return err
		}
		if err := c.Flags().Set("source", src); err != nil {
			return err
		}
		txnSuffix = ".replay-" + strconv.FormatInt(time.Now().Unix(), 10)
		return withLag(c, args[0], func() error { return inner(c, args) })
	}
	return cmd
}

// withLag runs fn; when the pipeline reads Kafka and stderr is a
// terminal, it shows the replay's progress there instead of run's
// records counter: records replayed, the lag left, and the rate.
func withLag(c *cobra.Command, script string, fn func() error) error {
	f, ok := c.ErrOrStderr().(*os.File)
	show, _ := c.Flags().GetBool("progress")
	if !ok || !show || !term.IsTerminal(int(f.Fd())) {
		return fn()
	}
	src, _ := c.Flags().GetString("source")
	if src == "" {
		if p, err := scripting.Load(script); err == nil {
			src = p.Source
		}
	}
	group, ok := kafka.GroupOf(src)
	if !ok {
		return fn()
	}
	if err := c.Flags().Set("progress", "false"); err != nil {
		return err
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
			}
			pr, ok := kafka.GroupProgress(group)
			if !ok {
				continue
			}
			rate := float64(pr.Read) / time.Since(start).Seconds()
			fmt.Fprintf(f, "\r\033[Kreplayed %d records, lag left %d, %.0f records/s (%d partitions)", pr.Read, pr.Lag, rate, pr.Partitions)
		}
	}()
	err := fn()
	close(done)
	<-stopped
	return err
}

// rewind makes the checkpoint (or savepoint) the last one of dir.
func rewind(dir string, id uint64, savepoint string) error {
	if dir == "" {
		return fmt.Errorf("replay from a checkpoint needs --state DIR, the directory the pipeline ran with")
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	store, err := state.Open(dir)
	if err != nil {
		return err
	}
	defer store.Close()
	if savepoint != "" {
		sp, err := store.Savepoint(savepoint)
		if err != nil {
			return fmt.Errorf("%s has no savepoint %q (eddy checkpoints list --state %s)", dir, savepoint, dir)
		}
		id = sp.ID
	}
	cp, err := store.Rewind(id)
	if errors.Is(err, state.ErrNoCheckpoint) {
		return fmt.Errorf("%s keeps no checkpoint %d (eddy checkpoints list --state %s)", dir, id, dir)
	}
	if err != nil {
		return err
	}
	slog.Info("replaying: the state and positions of checkpoint are restored as a new checkpoint", "from", id, "as", cp.ID)
	return nil
}

// emptyState refuses a state directory that holds checkpoints: a replay
// from an offset starts from nothing, and wiping a directory is the
// user's call.
func emptyState(dir string) error {
	if dir == "" {
		return nil
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	store, err := state.Open(dir)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Last(); !errors.Is(err, state.ErrNoCheckpoint) {
		return fmt.Errorf("a replay from an offset or a time starts with empty state, and %s holds checkpoints: give a new --state directory (or none)", dir)
	}
	return nil
}

// replaySource is the pipeline's Kafka source set to start at an offset
// or a time, ignoring committed offsets, in a group of its own.
func replaySource(c *cobra.Command, script, offset, at string) (string, error) {
	src, _ := c.Flags().GetString("source")
	if src == "" {
		p, err := scripting.Load(script)
		if err != nil {
			return "", err
		}
		src = p.Source
	}
	t, err := connectors.Parse(src)
	if err != nil {
		return "", err
	}
	if t.Scheme != "kafka" {
		return "", fmt.Errorf("--from-offset and --from-time replay Kafka sources; %s is %s: (replay it from a checkpoint instead)", src, t.Scheme)
	}
	q := t.Params
	group, _ := kafka.GroupOf(src)
	q.Set("group", group+".replay-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	q.Set("ignore-committed", "true")
	q.Del("start")
	q.Del("start-time")
	if at != "" {
		if _, err := time.Parse(time.RFC3339, at); err != nil {
			return "", fmt.Errorf("--from-time %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", at)
		}
		q.Set("start-time", at)
	} else {
		if offset != "earliest" {
			if n, err := strconv.ParseInt(offset, 10, 64); err != nil || n < 0 {
				return "", fmt.Errorf("--from-offset %q: want earliest or an offset", offset)
			}
		}
		q.Set("start", offset)
	}
	return "kafka://" + t.Host + "/" + t.Path + "?" + q.Encode(), nil
}

// txnSuffix keeps a replay's transactional ids apart from the pipeline's.
var txnSuffix string

// withExactlyOnce adds --exactly-once to a run command. Exactly-once runs
// go through runExactlyOnce, which hands kafka:// sinks to the engine as
// connectors.Transactional (run's shared sinks do not pass that on).
func withExactlyOnce(cmd *cobra.Command) *cobra.Command {
	var on bool
	cmd.Flags().BoolVar(&on, "exactly-once", false, "kafka:// sinks write in transactions committed with each checkpoint (see docs/kafka.md)")
	inner := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if on || asksExactlyOnce(c, args[0]) {
			return runExactlyOnce(c, args[0])
		}
		return inner(c, args)
	}
	return cmd
}

// asksExactlyOnce: a sink URI of the flags or the script sets exactly-once.
func asksExactlyOnce(c *cobra.Command, script string) bool {
	uris := []string{}
	for _, name := range []string{"sink", "records", "dead-letter"} {
		v, _ := c.Flags().GetString(name)
		uris = append(uris, v)
	}
	if to, err := c.Flags().GetStringToString("to"); err == nil {
		for _, v := range to {
			uris = append(uris, v)
		}
	}
	if p, err := scripting.Load(script); err == nil {
		for _, v := range p.Sinks {
			uris = append(uris, v)
		}
	}
	for _, u := range uris {
		if strings.Contains(u, "exactly-once=true") {
			return true
		}
	}
	return false
}

// runExactlyOnce is eddy run for pipelines with exactly-once Kafka output:
// results (or records) and dead letters.
func runExactlyOnce(c *cobra.Command, path string) error {
	fl := c.Flags()
	str := func(name string) string { v, _ := fl.GetString(name); return v }
	num := func(name string) int { v, _ := fl.GetInt(name); return v }
	dur := func(name string) time.Duration { v, _ := fl.GetDuration(name); return v }
	to, _ := fl.GetStringToString("to")
	log := slog.Default()
	p, err := scripting.Load(path, scripting.WithLogger(log))
	if err != nil {
		return err
	}
	if p.HasRoute() || p.HasKeyHooks() {
		return fmt.Errorf("%s writes named outputs; --exactly-once covers results, records, late records and dead letters so far", p.Script)
	}
	if e := str("emit"); e != "" {
		if err := p.SetEmit(e); err != nil {
			return err
		}
	}
	srcURI := first(str("source"), p.Source)
	if srcURI == "" {
		return fmt.Errorf("%s names no source: give one with --source", p.Script)
	}
	extra := connectors.Params{}
	if n := num("max-files-per-trigger"); n > 0 {
		extra.Set("max-files-per-trigger", strconv.Itoa(n))
	}
	src, err := connectors.OpenSource(srcURI, extra)
	if err != nil {
		return err
	}
	defer src.Close()
	untilIdle, _ := fl.GetBool("until-idle")
	maxErrors, _ := fl.GetInt64("max-errors")
	cfg := actors.Config{
		Pipeline: p, Source: src, UntilIdle: untilIdle, MaxErrors: maxErrors, Shards: num("shards"), Workers: num("workers"),
		TriggerInterval: dur("trigger-interval"), CheckpointInterval: dur("checkpoint-interval"), Logger: log, Stats: &actors.Stats{},
	}
	sinks := &sinkSet{}
	defer sinks.closeUnused()
	var opened []connectors.Sink
	txURIs := map[string]bool{}
	open := func(uri string) (connectors.Sink, error) {
		t, err := connectors.Parse(uri)
		if err != nil {
			return nil, err
		}
		if t.Scheme != "kafka" {
			return sinks.open(uri)
		}
		if txURIs[uri] {
			return nil, fmt.Errorf("two outputs write %s: with --exactly-once give each its own topic", uri)
		}
		txURIs[uri] = true
		t.Params.Set("exactly-once", "true")
		if t.Params.Get("pipeline") == "" {
			t.Params.Set("pipeline", p.Name)
		}
		// Several processes of one group each need a transactional id of
		// their own: a source's static instance names it.
		suffix := txnSuffix
		if group, ok := kafka.GroupOf(srcURI); ok {
			t.Params.Set("source-group", group)
			if st, err := connectors.Parse(srcURI); err == nil && st.Params.Get("instance") != "" {
				suffix = "." + st.Params.Get("instance") + suffix
			}
		}
		if id := t.Params.Get("transactional-id"); id != "" || suffix != "" {
			if id == "" {
				id = "eddy." + p.Name + "." + t.Path
			}
			t.Params.Set("transactional-id", id+suffix)
		}
		s, err := connectors.OpenSink("kafka://" + t.Host + "/" + t.Path + "?" + t.Params.Encode())
		if err == nil {
			opened = append(opened, s)
		}
		return s, err
	}
	defer func() {
		if !sinks.closed {
			for _, s := range opened {
				s.Close()
			}
		}
	}()
	main := first(str("sink"), p.Sinks["main"])
	if p.HasAggregate() {
		if cfg.Results, err = open(first(to["results"], main, p.Sinks["results"], "stdout")); err != nil {
			return err
		}
		if uri := first(to["records"], str("records"), p.Sinks["records"]); uri != "" {
			if cfg.Records, err = open(uri); err != nil {
				return err
			}
		}
	} else if cfg.Records, err = open(first(to["records"], main, str("records"), p.Sinks["records"], "stdout")); err != nil {
		return err
	}
	if cfg.DeadLetters, err = open(first(to["dead_letter"], str("dead-letter"), p.Sinks["dead_letter"], "stderr")); err != nil {
		return err
	}
	if p.IsWindowed() {
		if cfg.Late, err = open(first(to["late"], p.Sinks["late"], "stderr")); err != nil {
			return err
		}
	}
	if len(txURIs) == 0 {
		log.Warn("--exactly-once: no kafka:// sink; stdout and files stay at-least-once across a crash")
	}
	dir := str("state")
	if dir == "" {
		if dir, err = os.MkdirTemp("", "eddy-state-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	store, err := state.Open(dir, state.WithKeep(max(num("keep"), 1)), state.WithLogger(log))
	if err != nil {
		return err
	}
	defer store.Close()
	cfg.Store = store
	if cp, err := store.Last(); err == nil {
		log.Info("resuming from checkpoint", "id", cp.ID, "time", cp.Time.Format(time.RFC3339), "keys", cp.Keys)
	}
	progress, _ := fl.GetBool("progress")
	stopProgress := startProgress(c.ErrOrStderr(), progress, cfg.Stats)
	sum, err := actors.Run(c.Context(), cfg)
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
	return nil
}
