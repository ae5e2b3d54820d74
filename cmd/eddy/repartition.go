package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/scripting"
)

// --repartition: a pipeline whose key is not the way its Kafka topics are
// partitioned (a join of several topics, or any keyed pipeline) runs on a
// cluster through a repartition topic (docs/cluster.md, "Stages and joins
// on a cluster"). Each node runs two members:
//
//   - the shuffler, a member of the pipeline's group on its source topics:
//     it parses, filters and keys each record as the pipeline does and
//     writes the record as read to the repartition topic's partition of its
//     key, with its source partition and offset; and a watermark marker of
//     that partition to every partition after each batch;
//   - the engine, a member of the group GROUP.repartition.1 on the
//     repartition topic: the pipeline run as on any Kafka topic, each
//     partition with its state, changelog and checkpoints, each key's
//     records all in one partition.
//
// A pipeline with stages re-keys again between them: runStages
// (repartition_stages.go) runs each stage as an engine of its own.

// repartitionGroupSuffix names the engine's group on boundary 1's topic.
const repartitionGroupSuffix = ".repartition.1"

// shuffleSource is one kafka:// source of the pipeline: its name ("" for
// a one-source pipeline) and URI.
type shuffleSource struct{ name, uri string }

// pipelineSources lists the pipeline's sources, as --source and the
// script give them; every one must be kafka:// on one cluster and group.
func pipelineSources(p *scripting.Pipeline, f runFlags) ([]shuffleSource, error) {
	var out []shuffleSource
	if p.HasSources() {
		if f.source != "" {
			for _, pair := range strings.Split(f.source, ",") {
				name, uri, ok := strings.Cut(pair, "=")
				if !ok || strings.ContainsAny(name, ":/") {
					return nil, fmt.Errorf("--source %s: %s reads several sources (%s): say which one with --source NAME=URI", f.source, p.Script, strings.Join(p.SourceNames(), ", "))
				}
				if err := p.SetSourceURI(name, uri); err != nil {
					return nil, err
				}
			}
		}
		for _, s := range p.Sources {
			out = append(out, shuffleSource{s.Name, kafka.WithDefaultGroup(s.URI, p.Name)})
		}
	} else {
		out = append(out, shuffleSource{"", kafka.WithDefaultGroup(first(f.source, p.Source), p.Name)})
	}
	return out, nil
}

// shuffleTopics gathers the sources' topics into one kafka:// URI and
// checks they share the cluster, group and parameters.
func shuffleTopics(srcs []shuffleSource) (kt *kafkaTopics, err error) {
	kt = &kafkaTopics{byTopic: map[string]string{}}
	for _, s := range srcs {
		t, err := connectors.Parse(s.uri)
		if err != nil {
			return nil, fmt.Errorf("--repartition: source %s: %w", s.uri, err)
		}
		if t.Scheme != "kafka" {
			return nil, fmt.Errorf("--repartition: source %s is not kafka://: a repartition topic carries records between the nodes reading Kafka topics (files and generators run in one process)", s.uri)
		}
		if err := kt.add(s.name, s.uri); err != nil {
			return nil, err
		}
	}
	return kt, nil
}

// openRepartitioned starts the shuffler on the pipeline's sources and
// opens the engine's source on the repartition topic. With --until-idle it
// first waits until the shuffler has written everything there is.
func openRepartitioned(ctx context.Context, p *scripting.Pipeline, f runFlags, log *slog.Logger) (string, connectors.Source, *shuffler, error) {
	if len(p.Stages) > 0 {
		// (runStages splits them: each stage is a pipeline of its own.)
		return "", nil, nil, fmt.Errorf("--repartition: %s has %d stages: its stages run as engines of their own (an eddy bug: please report it)", p.Script, len(p.Stages)+1)
	}
	if !p.HasAggregate() && !p.HasJoin() {
		return "", nil, nil, fmt.Errorf("--repartition: %s neither aggregates nor joins: its records need no re-key", p.Script)
	}
	srcs, err := pipelineSources(p, f)
	if err != nil {
		return "", nil, nil, err
	}
	kt, err := shuffleTopics(srcs)
	if err != nil {
		return "", nil, nil, err
	}
	sh, err := startShuffler(ctx, p, kt, f.repartitionPartitions, log)
	if err != nil {
		return "", nil, nil, err
	}
	if f.untilIdle {
		if err := sh.waitCaughtUp(ctx); err != nil {
			sh.Close()
			return "", nil, nil, err
		}
	}
	q := url.Values(kt.first.Params)
	v := url.Values{}
	for k, vals := range q {
		v[k] = append([]string(nil), vals...)
	}
	v.Set("group", sh.group+repartitionGroupSuffix)
	// Only committed transactions: an aborted or fenced shuffler's writes
	// never reach the engine, whatever the sources read.
	v.Set("isolation", "read_committed")
	v.Set("streams", strings.Join(sh.streams, ","))
	uri := "kafka://" + kt.first.Host + "/" + sh.topic + "?" + v.Encode()
	src, err := connectors.OpenSource(uri, connectors.Params{})
	if err != nil {
		sh.Close()
		return "", nil, nil, err
	}
	return uri, src, sh, nil
}

// shuffler is a member of the pipeline's group on its source topics that
// writes each kept record to the repartition topic by its key.
type shuffler struct {
	p       *scripting.Pipeline
	kt      *kafkaTopics
	src     *kafka.Source
	conn    kafka.Conn
	nOut    int32 // the repartition topic's partitions
	log     *slog.Logger
	group   string
	topic   string
	streams []string // the source partitions: the repartition topic's upstreams

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	parts     map[string]*shufflePart
	positions map[string]connectors.Position
	cpID      uint64
	caughtUp  map[string]bool
	ckMu      sync.Mutex // one checkpoint at a time
}

type shufflePart struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startShuffler joins the group on the sources' topics, makes the
// repartition topic (partitions: the sources' most, unless n says) and
// starts writing it.
func startShuffler(ctx context.Context, p *scripting.Pipeline, kt *kafkaTopics, n int, log *slog.Logger) (*shuffler, error) {
	src, err := connectors.OpenSource(kt.uri(), connectors.Params{})
	if err != nil {
		return nil, fmt.Errorf("--repartition: sources %s: %w", strings.Join(kt.names(), ", "), err)
	}
	ks := src.(*kafka.Source)
	sh := &shuffler{p: p, kt: kt, src: ks, log: log, parts: map[string]*shufflePart{}, positions: map[string]connectors.Position{}, caughtUp: map[string]bool{}}
	if err := sh.prepare(ctx, n); err != nil {
		src.Close()
		return nil, err
	}
	sh.ctx, sh.cancel = context.WithCancelCause(context.Background())
	if err := src.Start(sh.ctx, sh); err != nil {
		sh.Close()
		return nil, err
	}
	return sh, nil
}

// prepare lists the source partitions and makes the topic and its writer.
func (sh *shuffler) prepare(ctx context.Context, n int) error {
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ids, err := sh.src.AllPartitions(lctx)
	if err != nil {
		return err
	}
	sort.Strings(ids)
	sh.streams = ids
	if n == 0 {
		n = maxPartitions(ids)
	}
	conn, err := kafka.ParseConn(sh.kt.first)
	if err != nil {
		return err
	}
	sh.group = sh.kt.first.Params.Get("group")
	sh.topic = kafka.RepartitionTopic(sh.group, 1)
	if err := kafka.EnsureRepartitionTopic(lctx, conn, sh.topic, int32(n)); err != nil {
		return err
	}
	sh.conn, sh.nOut = conn, int32(n)
	return nil
}

// maxPartitions is the most partitions any one topic of ids has (ids
// read kafka:TOPIC/N).
func maxPartitions(ids []string) int {
	per := map[string]int{}
	most := 0
	for _, id := range ids {
		topic := id[:strings.LastIndexByte(id, '/')]
		per[topic]++
		most = max(most, per[topic])
	}
	return most
}

// Err is why the shuffler stopped, nil while it runs.
func (sh *shuffler) Err() error {
	if sh.ctx.Err() == nil {
		return nil
	}
	if err := context.Cause(sh.ctx); err != context.Canceled {
		return err
	}
	return nil
}

// Done is closed when the shuffler stops.
func (sh *shuffler) Done() <-chan struct{} { return sh.ctx.Done() }

// Close stops the shuffler: its members leave the group.
func (sh *shuffler) Close() {
	sh.src.Close()
	if sh.cancel != nil {
		sh.cancel(context.Canceled)
	}
	sh.mu.Lock()
	parts := make([]*shufflePart, 0, len(sh.parts))
	for _, sp := range sh.parts {
		parts = append(parts, sp)
	}
	sh.mu.Unlock()
	for _, sp := range parts {
		sp.cancel()
		<-sp.done
	}
}

// Assign implements connectors.Listener: the partition is shuffled on a
// goroutine of its own.
func (sh *shuffler) Assign(part connectors.Partition) {
	ctx, cancel := context.WithCancel(sh.ctx)
	sp := &shufflePart{cancel: cancel, done: make(chan struct{})}
	sh.mu.Lock()
	sh.parts[part.ID()] = sp
	sh.caughtUp[part.ID()] = false
	sh.mu.Unlock()
	go func() {
		defer close(sp.done)
		err := sh.shuffle(ctx, part)
		sh.log.Debug("--repartition: shuffling of a source partition ended", "partition", part.ID(), "err", err, "revoked", ctx.Err() != nil)
		switch {
		case err == nil || ctx.Err() != nil:
		case kafka.Fenced(err):
			// The partition has a new owner (this node was dropped from
			// the group, paused or cut off): what this writer left open is
			// aborted, and the group takes the partition from it.
			sh.log.Warn("--repartition: a source partition's writer was fenced by its next owner; it stops here", "partition", part.ID(), "err", err)
		case errors.Is(err, scripting.ErrInterrupted):
			// The run is stopping (the engine interrupts the pipeline's
			// every runtime): the batch cut short was neither written
			// nor committed, and the next owner reads it again.
			sh.log.Debug("--repartition: shuffling stopped by the run's stop", "partition", part.ID(), "err", err)
		default:
			sh.cancel(fmt.Errorf("--repartition: %s: %w", part.ID(), err))
		}
	}()
}

// Revoke implements connectors.Listener: each batch was checkpointed once
// written, so the partition stops where its last batch did.
func (sh *shuffler) Revoke(id string) { sh.stop(id) }

// Lose implements connectors.Listener, as Revoke (the next owner's repeats
// are skipped downstream).
func (sh *shuffler) Lose(id string) { sh.stop(id) }

func (sh *shuffler) stop(id string) {
	sh.mu.Lock()
	sp := sh.parts[id]
	delete(sh.parts, id)
	delete(sh.caughtUp, id)
	delete(sh.positions, id)
	sh.mu.Unlock()
	if sp != nil {
		sp.cancel()
		<-sp.done
	}
}

// shuffle reads part from the group's committed offset and writes each
// batch's kept records, then its watermark marker, in a transaction that
// commits the batch's end as the partition's offset in the group.
func (sh *shuffler) shuffle(ctx context.Context, part connectors.Partition) error {
	id, source := part.ID(), sh.kt.nameOf(part.ID())
	if !sh.p.HasSources() {
		source = ""
	}
	// The writer first: it fences the partition's previous writer and
	// settles what that one left open, so the offset read next is final.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	w, err := kafka.NewRepartitionWriter(wctx, sh.conn, sh.topic, sh.nOut, kafka.RepartitionTxnID(sh.group, id))
	cancel()
	if err != nil {
		return err
	}
	defer w.Close()
	rt, err := sh.p.NewRuntime(false)
	if err != nil {
		return err
	}
	defer rt.Close()
	if err := part.Seek(nil); err != nil {
		return err
	}
	var latest int64
	timed, marked := false, false
	var committed connectors.Position
	for {
		b, err := part.Read(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		recs, moved, err := sh.keyBatch(rt, id, source, b, &latest, &timed)
		if err != nil {
			return err
		}
		if len(recs) == 0 && !moved && (!timed || marked) && bytes.Equal(b.End, committed) {
			sh.noteCaughtUp(id, b)
			continue // nothing new: no transaction
		}
		// Under the shuffler's context, not the partition's: a revoke
		// mid-batch lets the batch commit (the revoke waits for it).
		if err := w.Write(sh.ctx, recs); err != nil {
			return err
		}
		if moved || (timed && !marked) {
			if err := w.Mark(sh.ctx, id, latest); err != nil {
				return err
			}
			marked = true
		}
		if err := w.Commit(sh.ctx, sh.group, map[string]connectors.Position{id: b.End}); err != nil {
			return err
		}
		committed = b.End
		// (For a post-mortem of a stalled repartition topic, with -v.)
		sh.log.Debug("--repartition: a batch committed", "partition", id, "records", len(recs), "to", part.Describe(b.End))
		if b.Release != nil {
			b.Release() // the writes are committed: their values are no longer read
		}
		sh.checkpoint(id, b.End)
		sh.noteCaughtUp(id, b)
	}
}

// keyBatch keys b's records for the repartition topic, dropping what the
// filter drops, and moves latest, the partition's event time, on.
func (sh *shuffler) keyBatch(rt *scripting.Runtime, id, source string, b connectors.Batch, latest *int64, timed *bool) ([]kafka.RepartitionRecord, bool, error) {
	recs := make([]kafka.RepartitionRecord, 0, len(b.Records))
	moved := false
	for _, r := range b.Records {
		k, kept, err := shuffleKey(rt, source, r)
		if errors.Is(err, scripting.ErrInterrupted) {
			// Not the record's fault: routed by an empty key it would
			// reach a partition that may not own its key.
			return nil, false, err
		}
		if err == nil && !kept {
			continue // the filter drops it: downstream would too
		}
		if err == nil && sh.p.HasEventTime() && (!*timed || k.Time > *latest) {
			*latest, *timed, moved = k.Time, true, true
		}
		// A record the pipeline can't take goes on with an empty key:
		// the engine downstream sends it to the dead letters as a run in
		// one process would.
		recs = append(recs, kafka.RepartitionRecord{Key: k.Key, Value: r.Value, From: id, Source: source,
			Seq: kafka.Seq{Hi: r.Seq}, Time: r.Time})
	}
	return recs, moved, nil
}

// noteCaughtUp notes a batch that reached the partition's end
// (--until-idle waits for every partition's).
func (sh *shuffler) noteCaughtUp(id string, b connectors.Batch) {
	if !b.CaughtUp {
		return
	}
	sh.mu.Lock()
	if _, ok := sh.caughtUp[id]; ok {
		sh.caughtUp[id] = true
	}
	sh.mu.Unlock()
}

// shuffleKey runs the pipeline's parse, filter, map and key over r.
func shuffleKey(rt *scripting.Runtime, source string, r connectors.Record) (scripting.Keyed, bool, error) {
	var srcMs int64
	if !r.Time.IsZero() {
		srcMs = r.Time.UnixMilli()
	}
	var k scripting.Keyed
	var kept bool
	var err error
	if source != "" {
		k, _, kept, err = rt.ProcessSource(source, r.Value, srcMs)
	} else {
		k, _, kept, err = rt.ProcessAt(r.Value, srcMs)
	}
	if err != nil {
		return scripting.Keyed{}, true, err
	}
	return k, kept, nil
}

// checkpoint tells the source the partition's new committed position:
// the transaction committed it already, and the source's own commit of
// it (monotonic, and under this member's generation) only lets a revoke
// see that the partition's reads are covered.
func (sh *shuffler) checkpoint(id string, end connectors.Position) {
	sh.ckMu.Lock()
	defer sh.ckMu.Unlock()
	sh.mu.Lock()
	if _, ok := sh.parts[id]; !ok {
		sh.mu.Unlock()
		return
	}
	sh.positions[id] = end
	sh.cpID++
	cp := connectors.Checkpoint{ID: sh.cpID, Positions: make(map[string]connectors.Position, len(sh.positions))}
	for k, v := range sh.positions {
		cp.Positions[k] = v
	}
	sh.mu.Unlock()
	if err := sh.src.Checkpointed(sh.ctx, cp); err != nil {
		sh.log.Debug("--repartition: the plain offset commit after the transaction's failed", "err", err)
	}
}

// waitCaughtUp waits until the shuffler holds every source partition and
// has written all there is of each (--until-idle).
func (sh *shuffler) waitCaughtUp(ctx context.Context) error {
	deadline := time.Now().Add(connectors.MergedAssignTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		sh.mu.Lock()
		done := len(sh.caughtUp) == len(sh.streams)
		for _, ok := range sh.caughtUp {
			done = done && ok
		}
		held := len(sh.caughtUp)
		sh.mu.Unlock()
		if done {
			return nil
		}
		if time.Now().After(deadline) && held < len(sh.streams) {
			return fmt.Errorf("--repartition --until-idle: after %s this process holds %d of the %d source partitions: --until-idle drains them all in one process; is another node of the group running?", connectors.MergedAssignTimeout, held, len(sh.streams))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sh.ctx.Done():
			return sh.Err()
		case <-tick.C:
		}
	}
}

// shufflerStops is ctx, ended also when the shuffler stops (its failure is
// the run's).
func shufflerStops(ctx context.Context, sh *shuffler) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-sh.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
