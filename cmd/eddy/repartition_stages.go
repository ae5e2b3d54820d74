package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/scripting"
)

// --repartition with stages (q4, q5): each stage's key is a re-key, so
// each node runs one engine per stage (docs/cluster.md, "Stages and joins
// on a cluster"):
//
//   - stage 1, as any --repartition pipeline: the shuffler writes the
//     sources' records to eddy-repartition.GROUP.1 by the first stage's
//     key, and an engine in GROUP.repartition.1 aggregates them. Its
//     results (each window's row once, when it closes) go to
//     eddy-stages.GROUP.2, keyed by stage 2's key, in the transactions
//     that commit its changelog and positions: a row is visible once its
//     checkpoint is, and never twice, with or without --exactly-once.
//     Each checkpoint also marks, in the same transaction, the watermark
//     up to which each of its partitions' windows are out.
//   - stage N (2, 3, …), an engine in GROUP.repartition.N on
//     eddy-stages.GROUP.N (read_committed): each row of stage N-1 is a
//     record it keys and aggregates, with its state, changelog and
//     checkpoints per partition; its event time (a windowed stage's) is
//     the minimum of the markers of stage N-1's partitions. The last
//     stage writes the pipeline's sinks; one before it writes
//     eddy-stages.GROUP.N+1 as stage 1 writes its topic.
//
// With --until-idle each stage runs to its end in turn, then the next
// reads what it wrote to the end.

// stageGroupSuffix names stage n's engine's group (n ≥ 2).
func stageGroupSuffix(n int) string { return ".repartition." + strconv.Itoa(n) }

// runStages runs p's stages through the repartition and stage topics.
func runStages(cmd *cobra.Command, p *scripting.Pipeline, f runFlags, log *slog.Logger) (err error) {
	n := len(p.Stages) + 1
	later := make([]*scripting.Pipeline, n+2) // later[k]: stages[k] on its own; later[n+1] nil
	for k := 2; k <= n; k++ {
		if later[k], err = p.LaterStage(k); err != nil {
			return fmt.Errorf("--repartition: %w", err)
		}
	}
	p1 := p.FirstStage()
	ctx := cmd.Context()
	srcURI, src, sh, err := openRepartitioned(ctx, p1, f, log)
	if err != nil {
		return err
	}
	defer sh.Close()
	ctx, stop := shufflerStops(ctx, sh)
	defer stop()
	defer func() {
		if serr := sh.Err(); serr != nil {
			err = serr
		}
	}()
	defer src.Close()
	topics := make([]string, n+2) // topics[k]: stage k's input; topics[n+1] ""
	for k := 2; k <= n; k++ {
		topics[k] = kafka.StageTopic(sh.group, k)
		ectx, cancel := context.WithTimeout(ctx, time.Minute)
		err = kafka.EnsureRepartitionTopic(ectx, sh.conn, topics[k], sh.nOut)
		cancel()
		if err != nil {
			return err
		}
	}
	writer, err := stageWriterID(f, srcURI)
	if err != nil {
		return err
	}
	ks, ok := src.(*kafka.Source)
	if !ok {
		return fmt.Errorf("--repartition: stage 1's source is a %T, not a Kafka group's (an eddy bug: please report it)", src)
	}
	// The group's members name the live writers of the stage topic: a
	// takeover ends the open transactions of the others.
	ks.SetClientID(kafka.StageWriterClientID(writer))
	one, err := openStageOne(cmd, p1, later[2], f, log, srcURI, src, sh, topics[2], writer)
	if err != nil {
		return err
	}
	defer one.close()
	var rest []*stageRun
	upstream := sh.topic
	for k := 2; k <= n; k++ {
		r, err := openLaterStage(stageSpec{n: k, p: later[k], next: later[k+1], in: topics[k], out: topics[k+1], upstream: upstream, writer: writer}, f, log, sh)
		if err != nil {
			return err
		}
		defer r.close()
		rest = append(rest, r)
		upstream = topics[k]
	}
	if f.untilIdle {
		return runStagesInTurn(ctx, one, rest, topics, f, srcURI, src, sh, log)
	}
	return runAll(ctx, one, rest, f, srcURI, src, log)
}

// runStagesInTurn runs each stage to the end of its input, then the next
// (--until-idle).
func runStagesInTurn(ctx context.Context, one *stageRun, rest []*stageRun, topics []string, f runFlags, srcURI string, src connectors.Source, sh *shuffler, log *slog.Logger) error {
	sum, err := execute(ctx, one.cfg, f, srcURI, src, one.sinks)
	if err != nil {
		return fmt.Errorf("stage 1: %w", err)
	}
	log.Info("stage 1 reached the end of its input; stage 2 reads its rows", "read", sum.Read)
	// A killed node's rows written since its last checkpoint are in a
	// transaction no takeover ended: the next stage would take the offset
	// it holds back for the end.
	if err := kafka.FenceStageWriters(ctx, one.cfg.Changelog, topics[2], sh.nOut); err != nil {
		return fmt.Errorf("--repartition: %w", err)
	}
	for i, r := range rest {
		k := i + 2
		if err := runLaterStage(ctx, r, k, log); err != nil {
			return err
		}
		if k+1 < len(topics) && topics[k+1] != "" {
			if err := kafka.FenceStageWriters(ctx, r.cfg.Changelog, topics[k+1], sh.nOut); err != nil {
				return fmt.Errorf("--repartition: %w", err)
			}
		}
	}
	return nil
}

// stageRun is one stage's engine, opened, with what closes it.
type stageRun struct {
	cfg    actors.Config
	src    connectors.Source
	sinks  *sinkSet
	closes []func() error
}

func (r *stageRun) close() {
	for i := len(r.closes) - 1; i >= 0; i-- {
		r.closes[i]()
	}
}

// openStageOne opens stage 1's engine on the repartition topic src: its
// results go to topic by stage 2's key, in its changelog's transactions.
func openStageOne(cmd *cobra.Command, p1, p2 *scripting.Pipeline, f runFlags, log *slog.Logger, srcURI string, src connectors.Source, sh *shuffler, topic, writer string) (r *stageRun, err error) {
	r = &stageRun{src: src, sinks: &sinkSet{exactlyOnce: f.exactlyOnce, pipeline: p1.Name, source: srcURI}}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	r.closes = append(r.closes, func() error { r.sinks.closeUnused(); return nil })
	r.cfg = actors.Config{
		Pipeline: p1, Source: src, UntilIdle: f.untilIdle, MaxErrors: f.maxErrors, Shards: f.shards, Workers: f.workers,
		TriggerInterval: f.trigger, CheckpointInterval: f.checkpoint, Logger: log, Stats: &actors.Stats{},
		Node: nodeName(f.node, srcURI),
	}
	local := &lateLocal{}
	stopServing, err := serve(cmd.Context(), log, f, p1.Name, srcURI, &r.cfg, local)
	if err != nil {
		return r, err
	}
	r.closes = append(r.closes, func() error { stopServing(); return nil })
	closeStore, err := openStore(&r.cfg, f, log)
	if err != nil {
		return r, err
	}
	r.closes = append(r.closes, closeStore)
	out, err := openStageOut(sh, topic, writer, p2, sh.group+repartitionGroupSuffix, log)
	if err != nil {
		return r, err
	}
	r.cfg.Results = out
	r.sinks.byURI = map[string]connectors.Sink{"stage:" + topic: out}
	if p1.IsWindowed() || p1.HasJoin() {
		if r.cfg.Late, err = r.sinks.open(first(f.to["late"], p1.Sinks["late"], "stderr")); err != nil {
			return r, err
		}
	}
	if r.cfg.DeadLetters, err = r.sinks.open(first(f.to["dead_letter"], f.deadLetter, p1.Sinks["dead_letter"], "stderr")); err != nil {
		return r, err
	}
	info := describe(p1, r.cfg, srcURI, r.sinks)
	local.info.Store(&info)
	fo := f
	fo.exactlyOnce = false // (the changelog shares out's transactions, below)
	closeChangelog, err := openChangelog(&r.cfg, src, fo, log)
	if err != nil {
		return r, err
	}
	r.closes = append(r.closes, func() error { closeChangelog(); return nil })
	// The rows to stage 2 commit with the changelog, whatever
	// --exactly-once says: a row repeated after a crash would count twice
	// there.
	if cs, ok := r.cfg.Changelog.(connectors.ChangelogSharer); !ok || !cs.ShareTransaction(out) {
		return r, fmt.Errorf("--repartition: stage 1's changelog can't share the transactions of its rows to %s (is the changelog off?): a row repeated after a crash would count twice in stage 2", topic)
	}
	if err := kafka.FenceDeadWritersAtTakeover(r.cfg.Changelog, topic, sh.nOut); err != nil {
		return r, fmt.Errorf("--repartition: %w", err)
	}
	r.cfg.ChangelogShared = true
	return r, nil
}

// openStageOut opens this node's transactional writer of a stage's rows
// to topic, each keyed by the next stage's (next's) key; group is the
// writing engine's.
func openStageOut(sh *shuffler, topic, writer string, next *scripting.Pipeline, group string, log *slog.Logger) (*kafka.TxSink, error) {
	out, err := kafka.NewTxSink(kafka.SinkConfig{Conn: sh.conn, Topic: topic, ExactlyOnce: true, Format: "json",
		TransactionalID: topic + "." + writer, SourceGroup: group, Partitions: sh.nOut,
		RowKey: stageKeyOf(next), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--repartition: stage %s: %w", topic, err)
	}
	return out, nil
}

// stageKeyOf keys a stage 1 row by stage 2's key (a row without its
// columns goes unkeyed: stage 2 sends it to the dead letters).
func stageKeyOf(p2 *scripting.Pipeline) func(connectors.Row) string {
	return func(row connectors.Row) string {
		k, err := p2.StageKey(row)
		if err != nil {
			return ""
		}
		return k
	}
}

// stageSpec is a later stage's engine: stage n, pipeline p, reading
// topic in (written by the partitions of topic upstream), writing topic
// out by next's key, or the pipeline's sinks when it is the last (next
// nil, out "").
type stageSpec struct {
	n                 int
	p, next           *scripting.Pipeline
	in, out, upstream string
	writer            string
}

// openLaterStage opens a later stage's engine on its topic; its state is
// in --state's stageN directory.
func openLaterStage(spec stageSpec, f runFlags, log *slog.Logger, sh *shuffler) (r *stageRun, err error) {
	v := url.Values{}
	for k, vals := range sh.kt.first.Params {
		v[k] = append([]string(nil), vals...)
	}
	group := sh.group + stageGroupSuffix(spec.n)
	v.Set("group", group)
	v.Set("isolation", "read_committed") // the stage before's rows once their checkpoint commits
	v.Set("streams", strings.Join(partitionIDs(spec.upstream, sh.nOut), ","))
	uri := "kafka://" + sh.kt.first.Host + "/" + spec.in + "?" + v.Encode()
	src, err := connectors.OpenSource(uri, connectors.Params{})
	if err != nil {
		return nil, fmt.Errorf("--repartition: stage %d: %w", spec.n, err)
	}
	r = &stageRun{src: src, sinks: &sinkSet{exactlyOnce: f.exactlyOnce, pipeline: spec.p.Name, source: uri}}
	r.closes = append(r.closes, func() error { return src.Close() })
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	r.closes = append(r.closes, func() error { r.sinks.closeUnused(); return nil })
	log = log.With("stage", spec.n)
	r.cfg = actors.Config{
		Pipeline: spec.p, Source: src, UntilIdle: f.untilIdle, MaxErrors: f.maxErrors, Shards: f.shards, Workers: f.workers,
		TriggerInterval: f.trigger, CheckpointInterval: f.checkpoint, Logger: log, Stats: &actors.Stats{},
		Node: nodeName(f.node, uri),
	}
	if spec.next == nil {
		err = openLastStageSinks(r, spec, f, log)
	} else {
		err = openStageWriter(r, spec, f, log, sh, group)
	}
	if err != nil {
		return r, err
	}
	fs := f
	if f.stateDir != "" {
		fs.stateDir = filepath.Join(f.stateDir, "stage"+strconv.Itoa(spec.n))
	}
	closeStore, err := openStore(&r.cfg, fs, log)
	if err != nil {
		return r, err
	}
	r.closes = append(r.closes, closeStore)
	return r, nil
}

// openLastStageSinks opens the last stage's sinks (the pipeline's) and
// its changelog.
func openLastStageSinks(r *stageRun, spec stageSpec, f runFlags, log *slog.Logger) error {
	if err := openSinks(&r.cfg, spec.p, f, r.sinks); err != nil {
		return err
	}
	closeChangelog, err := openChangelog(&r.cfg, r.src, f, log)
	if err != nil {
		return err
	}
	r.closes = append(r.closes, func() error { closeChangelog(); return nil })
	return nil
}

// openStageWriter opens what a stage that feeds another writes: its rows
// to spec.out by the next stage's key, in the transactions of its
// changelog (as stage 1's: openStageOne), with its late rows and dead
// letters to the pipeline's.
func openStageWriter(r *stageRun, spec stageSpec, f runFlags, log *slog.Logger, sh *shuffler, group string) error {
	ks, ok := r.src.(*kafka.Source)
	if !ok {
		return fmt.Errorf("--repartition: stage %d's source is a %T, not a Kafka group's (an eddy bug: please report it)", spec.n, r.src)
	}
	ks.SetClientID(kafka.StageWriterClientID(spec.writer))
	out, err := openStageOut(sh, spec.out, spec.writer, spec.next, group, log)
	if err != nil {
		return err
	}
	r.cfg.Results = out
	r.sinks.byURI = map[string]connectors.Sink{"stage:" + spec.out: out}
	if r.cfg.Late, err = r.sinks.open(first(f.to["late"], spec.p.Sinks["late"], "stderr")); err != nil {
		return err
	}
	if r.cfg.DeadLetters, err = r.sinks.open(first(f.to["dead_letter"], f.deadLetter, spec.p.Sinks["dead_letter"], "stderr")); err != nil {
		return err
	}
	fo := f
	fo.exactlyOnce = false // (the changelog shares out's transactions, below)
	closeChangelog, err := openChangelog(&r.cfg, r.src, fo, log)
	if err != nil {
		return err
	}
	r.closes = append(r.closes, func() error { closeChangelog(); return nil })
	if cs, ok := r.cfg.Changelog.(connectors.ChangelogSharer); !ok || !cs.ShareTransaction(out) {
		return fmt.Errorf("--repartition: stage %d's changelog can't share the transactions of its rows to %s (is the changelog off?): a row repeated after a crash would count twice in stage %d", spec.n, spec.out, spec.n+1)
	}
	if err := kafka.FenceDeadWritersAtTakeover(r.cfg.Changelog, spec.out, sh.nOut); err != nil {
		return fmt.Errorf("--repartition: %w", err)
	}
	r.cfg.ChangelogShared = true
	return nil
}

// partitionIDs are the engine's ids of topic's n partitions: the streams
// of the stage topic they write.
func partitionIDs(topic string, n int32) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = "kafka:" + topic + "/" + strconv.Itoa(int(i))
	}
	return ids
}

// runLaterStage runs stage n's engine to its end.
func runLaterStage(ctx context.Context, r *stageRun, n int, log *slog.Logger) error {
	sum, err := actors.Run(ctx, r.cfg)
	r.sinks.closed = true // Run closed them
	if err != nil {
		return fmt.Errorf("stage %d: %w", n, err)
	}
	return report(log, sum)
}

// runAll runs the engines side by side until the run stops; one's
// failure stops the others.
func runAll(ctx context.Context, one *stageRun, rest []*stageRun, f runFlags, srcURI string, src connectors.Source, log *slog.Logger) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, len(rest))
	for i, r := range rest {
		go func() {
			err := runLaterStage(ctx, r, i+2, log)
			if err != nil {
				cancel(err)
			}
			done <- err
		}()
	}
	sum, err := execute(ctx, one.cfg, f, srcURI, src, one.sinks)
	cancel(err)
	var errLater error
	for range rest {
		if e := <-done; e != nil && errLater == nil && !strings.Contains(e.Error(), context.Canceled.Error()) {
			errLater = e
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("stage 1: %w", err)
	case errLater != nil:
		return errLater
	}
	return report(log, sum)
}

// stageWriterID names this node's writer of stage 1's rows, for its
// transactional id: --node or the source's static instance when given;
// else an id kept in --state, so that the node restarted on the same
// state fences its dead predecessor's open transaction at once (as Kafka
// Streams keeps its process id in its state directory); else (no --state)
// one for this run. Two nodes must never share it: each would fence the
// other.
func stageWriterID(f runFlags, srcURI string) (string, error) {
	if f.node != "" {
		return f.node, nil
	}
	if t, err := connectors.Parse(srcURI); err == nil && t.Params.Get("instance") != "" {
		return t.Params.Get("instance"), nil
	}
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	if f.stateDir == "" {
		return id, nil
	}
	path := filepath.Join(f.stateDir, "stage-writer-id")
	if kept, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(kept)), nil
	} else if !os.IsNotExist(err) {
		return "", fmt.Errorf("--repartition: %w", err)
	}
	if err := os.MkdirAll(f.stateDir, 0o755); err != nil {
		return "", fmt.Errorf("--repartition: keep stage 1's writer id: %w", err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("--repartition: keep stage 1's writer id: %w", err)
	}
	return id, nil
}
