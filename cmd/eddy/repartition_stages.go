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
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/scripting"
)

// --repartition with stages (q4, q5): each stage's key is a re-key, so
// each node runs two engines (docs/cluster.md, "Stages on a cluster"):
//
//   - stage 1, as any --repartition pipeline: the shuffler writes the
//     sources' records to eddy-repartition.GROUP.1 by the first stage's
//     key, and an engine in GROUP.repartition.1 aggregates them. Its
//     results (each window's row once, when it closes) go to
//     eddy-stages.GROUP.2, keyed by stage 2's key, in the transactions
//     that commit its changelog and positions: a row is visible once its
//     checkpoint is, and never twice, with or without --exactly-once.
//   - stage 2, an engine in GROUP.repartition.2 on eddy-stages.GROUP.2
//     (read_committed): each row of stage 1 is a record it keys and
//     aggregates, with its state, changelog and checkpoints per
//     partition, writing the pipeline's sinks.
//
// With --until-idle stage 1 runs to its end first, then stage 2 reads
// what it wrote to the end.

// stage2GroupSuffix names stage 2's engine's group.
const stage2GroupSuffix = ".repartition.2"

// runStages runs p's two stages through the repartition topics.
func runStages(cmd *cobra.Command, p *scripting.Pipeline, f runFlags, log *slog.Logger) (err error) {
	p2, err := p.LaterStage()
	if err != nil {
		return fmt.Errorf("--repartition: %w", err)
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
	topic := kafka.StageTopic(sh.group, 2)
	ectx, cancel := context.WithTimeout(ctx, time.Minute)
	err = kafka.EnsureRepartitionTopic(ectx, sh.conn, topic, sh.nOut)
	cancel()
	if err != nil {
		return err
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
	one, err := openStageOne(cmd, p1, p2, f, log, srcURI, src, sh, topic, writer)
	if err != nil {
		return err
	}
	defer one.close()
	two, err := openStageTwo(p2, f, log, sh, topic)
	if err != nil {
		return err
	}
	defer two.close()
	if f.untilIdle {
		sum, err := execute(ctx, one.cfg, f, srcURI, src, one.sinks)
		if err != nil {
			return fmt.Errorf("stage 1: %w", err)
		}
		log.Info("stage 1 reached the end of its input; stage 2 reads its rows", "read", sum.Read)
		// A killed node's rows written since its last checkpoint are in a
		// transaction no takeover ended: stage 2 would take the offset it
		// holds back for the end.
		if err := kafka.FenceStageWriters(ctx, one.cfg.Changelog, topic, sh.nOut); err != nil {
			return fmt.Errorf("--repartition: %w", err)
		}
		return runStageTwo(ctx, two, log)
	}
	return runBoth(ctx, one, two, f, srcURI, src, log)
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
	out, err := openStageOut(sh, topic, writer, p2, log)
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

// openStageOut opens this node's transactional writer of stage 1's rows
// to topic, each keyed by stage 2's key.
func openStageOut(sh *shuffler, topic, writer string, p2 *scripting.Pipeline, log *slog.Logger) (*kafka.TxSink, error) {
	out, err := kafka.NewTxSink(kafka.SinkConfig{Conn: sh.conn, Topic: topic, ExactlyOnce: true, Format: "json",
		TransactionalID: topic + "." + writer, SourceGroup: sh.group + repartitionGroupSuffix,
		RowKey: stageKeyOf(p2), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--repartition: stage 2's topic %s: %w", topic, err)
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

// openStageTwo opens stage 2's engine on topic, writing the pipeline's
// sinks; its state is in --state's stage2 directory.
func openStageTwo(p2 *scripting.Pipeline, f runFlags, log *slog.Logger, sh *shuffler, topic string) (r *stageRun, err error) {
	v := url.Values{}
	for k, vals := range sh.kt.first.Params {
		v[k] = append([]string(nil), vals...)
	}
	v.Set("group", sh.group+stage2GroupSuffix)
	v.Set("isolation", "read_committed") // stage 1's rows once their checkpoint commits
	uri := "kafka://" + sh.kt.first.Host + "/" + topic + "?" + v.Encode()
	src, err := connectors.OpenSource(uri, connectors.Params{})
	if err != nil {
		return nil, fmt.Errorf("--repartition: stage 2: %w", err)
	}
	r = &stageRun{src: src, sinks: &sinkSet{exactlyOnce: f.exactlyOnce, pipeline: p2.Name, source: uri}}
	r.closes = append(r.closes, func() error { return src.Close() })
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	r.closes = append(r.closes, func() error { r.sinks.closeUnused(); return nil })
	log = log.With("stage", 2)
	r.cfg = actors.Config{
		Pipeline: p2, Source: src, UntilIdle: f.untilIdle, MaxErrors: f.maxErrors, Shards: f.shards, Workers: f.workers,
		TriggerInterval: f.trigger, CheckpointInterval: f.checkpoint, Logger: log, Stats: &actors.Stats{},
		Node: nodeName(f.node, uri),
	}
	if err := openSinks(&r.cfg, p2, f, r.sinks); err != nil {
		return r, err
	}
	closeChangelog, err := openChangelog(&r.cfg, src, f, log)
	if err != nil {
		return r, err
	}
	r.closes = append(r.closes, func() error { closeChangelog(); return nil })
	fs := f
	if f.stateDir != "" {
		fs.stateDir = filepath.Join(f.stateDir, "stage2")
	}
	closeStore, err := openStore(&r.cfg, fs, log)
	if err != nil {
		return r, err
	}
	r.closes = append(r.closes, closeStore)
	return r, nil
}

// runStageTwo runs stage 2's engine to its end.
func runStageTwo(ctx context.Context, two *stageRun, log *slog.Logger) error {
	sum, err := actors.Run(ctx, two.cfg)
	two.sinks.closed = true // Run closed them
	if err != nil {
		return fmt.Errorf("stage 2: %w", err)
	}
	return report(log, sum)
}

// runBoth runs the two engines side by side until the run stops; either
// one's failure stops the other.
func runBoth(ctx context.Context, one, two *stageRun, f runFlags, srcURI string, src connectors.Source, log *slog.Logger) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() {
		err := runStageTwo(ctx, two, log)
		if err != nil {
			cancel(err)
		}
		done <- err
	}()
	sum, err := execute(ctx, one.cfg, f, srcURI, src, one.sinks)
	if err != nil {
		cancel(err)
	} else {
		cancel(nil)
	}
	errTwo := <-done
	switch {
	case err != nil:
		return fmt.Errorf("stage 1: %w", err)
	case errTwo != nil && !strings.Contains(errTwo.Error(), context.Canceled.Error()):
		return errTwo
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
