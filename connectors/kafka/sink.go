package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddy-stream/eddy/connectors"
)

// SinkConfig is where a kafka:// sink writes and how.
type SinkConfig struct {
	Conn
	// Topic is the one topic written.
	Topic string
	// ExactlyOnce writes in transactions committed with the engine's
	// checkpoints (connectors.Transactional).
	ExactlyOnce bool
	// TransactionalID fences an older process writing for the same
	// pipeline; default "eddy." + Pipeline + "." + Topic.
	TransactionalID string
	// Pipeline names the pipeline, for the default TransactionalID.
	Pipeline string
	// SourceGroup is the consumer group of a Kafka source: each
	// transaction also commits the source offsets of its checkpoint to
	// it, as Kafka Streams does, so the group's offsets never run ahead
	// of or behind the committed output.
	SourceGroup string
	// Format is "json" (each row as a JSON object, the row's key as the
	// record key), "dead-letter" (the failed raw record as the value and
	// where it came from and why in headers) or "auto" (default: a row
	// shaped as a dead letter is written as one).
	Format string
	// RowKey, when set, is each row's record key in place of the row's
	// own: a stage's rows written to a repartition topic go to the
	// partition of the next stage's key.
	RowKey func(connectors.Row) string
	// Partitions is a stage topic's partition count, for MarkWatermarks
	// to write to every one.
	Partitions int32
	Logger     *slog.Logger
}

// OpenSink opens the sink a kafka:// target names. Parameters:
// exactly-once=true, transactional-id, pipeline, format=auto|json|
// dead-letter, source-group, and the connection's (see ParseConn).
func OpenSink(t connectors.Target) (connectors.Sink, error) {
	conn, err := ParseConn(t)
	if err != nil {
		return nil, err
	}
	if len(conn.Topics) != 1 {
		return nil, fmt.Errorf("a kafka sink writes one topic: write kafka://HOST:PORT/TOPIC")
	}
	c := SinkConfig{Conn: conn, Topic: conn.Topics[0], ExactlyOnce: t.Params.Get("exactly-once") == "true",
		TransactionalID: t.Params.Get("transactional-id"), Pipeline: t.Params.Get("pipeline"), SourceGroup: t.Params.Get("source-group")}
	if c.Format, err = t.Choice("format", "auto", "auto", "json", "dead-letter"); err != nil {
		return nil, err
	}
	if c.ExactlyOnce {
		return NewTxSink(c)
	}
	return NewSink(c)
}

// Sink writes rows to a topic with an idempotent producer: at-least-once
// across a crash (rows after the last checkpoint are written again), never
// duplicated by the producer's own retries.
type Sink struct {
	cfg SinkConfig
	cl  *kgo.Client

	mu  sync.Mutex
	err error // the first failed produce since the last Flush
}

var _ connectors.Sink = (*Sink)(nil)

// NewSink returns an idempotent, non-transactional sink.
func NewSink(c SinkConfig) (*Sink, error) {
	return newSink(c)
}

func newSink(c SinkConfig, opts ...kgo.Opt) (*Sink, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Format == "" {
		c.Format = "auto"
	}
	if err := validTopic(c.Topic); err != nil {
		return nil, err
	}
	if IsStageTopic(c.Topic) && c.Partitions < 1 {
		return nil, fmt.Errorf("kafka sink %s: a stage topic's writer needs its partition count (an eddy bug: please report it)", c.Topic)
	}
	conn := c.Conn
	conn.Topics = []string{c.Topic}
	if err := conn.Check(context.Background()); err != nil {
		return nil, err
	}
	cl, err := c.NewClient(sinkOpts(c.Topic, opts...)...)
	if err != nil {
		return nil, err
	}
	return &Sink{cfg: c, cl: cl}, nil
}

// sinkOpts are the producer options of a sink writing topic.
func sinkOpts(topic string, opts ...kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RecordDeliveryTimeout(2 * time.Minute),
		kgo.RecordPartitioner(newSinkPartitioner()),
	}, opts...)
}

// txOpts are the options of a transactional sink's producer.
func txOpts(txnID string) []kgo.Opt {
	return []kgo.Opt{kgo.TransactionalID(txnID), kgo.TransactionTimeout(time.Minute)}
}

func (s *Sink) promise(_ *kgo.Record, err error) {
	if err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
}

func (s *Sink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Write hands the rows to the producer, which batches them.
func (s *Sink) Write(ctx context.Context, rows []connectors.Row) error {
	if err := s.failed(); err != nil {
		return fmt.Errorf("kafka sink %s: %w", s.cfg.Topic, err)
	}
	// A record buffered under the run's context fails with "context
	// canceled" if the run is stopped before the batch goes out, and
	// Close then reports it: a clean stop ended with exit 1. Delivery is
	// bounded by RecordDeliveryTimeout and Close's flush instead.
	ctx = context.WithoutCancel(ctx)
	for _, r := range rows {
		s.cl.Produce(ctx, s.record(r), s.promise)
	}
	return nil
}

// record encodes a row: JSON with the row's key, or a dead letter.
func (s *Sink) record(r connectors.Row) *kgo.Record {
	if s.cfg.Format == "dead-letter" || (s.cfg.Format == "auto" && isDeadLetter(r)) {
		return deadLetterRecord(r)
	}
	rec := &kgo.Record{Value: connectors.AppendJSON(nil, r)}
	if s.cfg.RowKey != nil {
		r.Key = s.cfg.RowKey(r)
	}
	if r.Key != "" {
		rec.Key = []byte(r.Key)
	}
	return rec
}

// isDeadLetter reports whether r has the engine's dead-letter fields:
// error, partition, source, record.
func isDeadLetter(r connectors.Row) bool {
	names := [...]string{"error", "partition", "source", "record"}
	if len(r.Fields) != len(names) {
		return false
	}
	for i, f := range r.Fields {
		if f.Name != names[i] {
			return false
		}
	}
	return true
}

// deadLetterRecord carries the failed raw record as its value, and why
// and where it failed in headers: eddy-error, eddy-partition,
// eddy-source, and for a Kafka input kafka-topic, kafka-partition and
// kafka-offset.
func deadLetterRecord(r connectors.Row) *kgo.Record {
	str := func(name string) string {
		v, _ := r.Get(name)
		s, _ := v.(string)
		return s
	}
	rec := &kgo.Record{Value: []byte(str("record"))}
	rec.Headers = append(rec.Headers,
		kgo.RecordHeader{Key: "eddy-error", Value: []byte(str("error"))},
		kgo.RecordHeader{Key: "eddy-partition", Value: []byte(str("partition"))},
		kgo.RecordHeader{Key: "eddy-source", Value: []byte(str("source"))})
	// A Kafka source locates a record as "TOPIC/3 offset 17".
	if where, off, ok := strings.Cut(str("source"), " offset "); ok && strings.HasPrefix(str("partition"), "kafka:") {
		if i := strings.LastIndexByte(where, '/'); i > 0 {
			rec.Headers = append(rec.Headers,
				kgo.RecordHeader{Key: "kafka-topic", Value: []byte(where[:i])},
				kgo.RecordHeader{Key: "kafka-partition", Value: []byte(where[i+1:])},
				kgo.RecordHeader{Key: "kafka-offset", Value: []byte(off)})
		}
	}
	return rec
}

// Flush waits until every row written is acknowledged by the broker.
func (s *Sink) Flush(ctx context.Context) error {
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("kafka sink %s: flush: %w", s.cfg.Topic, err)
	}
	if err := s.failed(); err != nil {
		return fmt.Errorf("kafka sink %s: %w", s.cfg.Topic, err)
	}
	return nil
}

// Close flushes and disconnects.
func (s *Sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.Flush(ctx)
	s.cl.Close()
	return err
}

// TxSink is an exactly-once sink: what is written between two checkpoints
// goes into one Kafka transaction, committed by Commit together with a
// marker of the checkpoint in the compacted topic
// __eddy_checkpoints.<transactional id>, which Committed reads back after
// a crash with read_committed.
type TxSink struct {
	*Sink
	txnID  string
	marker string

	// txMu guards inTxn and orders beginning a transaction, producing
	// into it and ending it: a changelog sharing the transaction
	// (ShareTransaction) writes from the shards' goroutines while the
	// sink's writer writes rows.
	txMu  sync.Mutex
	inTxn bool
	// afterCommit runs once the open transaction has committed (a shared
	// changelog waits there until readers see its markers).
	afterCommit []func(context.Context)
	topicIDs    map[string][16]byte // source topics, for TxnOffsetCommit v6+
	// fencedOut: a flush or commit failed after the source lost
	// partitions, so the producer may have been fenced by their next
	// owner (fencePrevious), and Abort replaces it.
	fencedOut atomic.Bool
	// txnGiven is the source's count of partitions given up when the
	// open transaction began (Source.refusal).
	txnGiven atomic.Int64
}

var _ connectors.Transactional = (*TxSink)(nil)

// NewTxSink returns a transactional sink. It fences any older process
// with the same transactional ID and aborts what that one left open.
func NewTxSink(c SinkConfig) (*TxSink, error) {
	if c.TransactionalID == "" {
		c.TransactionalID = "eddy." + c.Topic
		if c.Pipeline != "" {
			c.TransactionalID = "eddy." + c.Pipeline + "." + c.Topic
		}
	}
	s, err := newSink(c, txOpts(c.TransactionalID)...)
	if err != nil {
		return nil, err
	}
	t := &TxSink{Sink: s, txnID: c.TransactionalID, marker: markerTopic(c.TransactionalID)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ensureMarkerTopic(ctx, c.Conn, t.marker); err != nil {
		s.cl.Close()
		return nil, err
	}
	if err := retryTransient(ctx, fmt.Sprintf("kafka sink %s: transactional id %s", c.Topic, c.TransactionalID), initProducerID(s.cl)); err != nil {
		s.cl.Close()
		return nil, err
	}
	return t, nil
}

// markerTopic is the compacted topic that records a transactional id's
// committed checkpoints.
func markerTopic(txnID string) string {
	b := []byte(txnID)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return "__eddy_checkpoints." + string(b)
}

func ensureMarkerTopic(ctx context.Context, c Conn, topic string) error {
	cl, err := c.NewClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	compact := "compact"
	res, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafka: create the checkpoint marker topic %s: %w", topic, err)
	}
	return nil
}

// marker is what Commit records beside a checkpoint's outputs.
type marker struct {
	ID        uint64            `json:"id"`
	Positions map[string][]byte `json:"positions"`
}

// begin opens a transaction unless one is open; txMu is held.
func (t *TxSink) begin() error {
	if t.inTxn {
		return nil
	}
	if src := sourceOf(t.cfg.SourceGroup); src != nil && t.cfg.SourceGroup != "" {
		t.txnGiven.Store(src.given.Load())
	}
	if err := t.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("kafka sink %s: begin transaction: %w", t.cfg.Topic, err)
	}
	t.inTxn = true
	return nil
}

// Flush waits until every row written is acknowledged; a failure because
// the source's partitions moved is reported as connectors.ErrNotMember
// (see refused).
func (t *TxSink) Flush(ctx context.Context) error {
	if err := t.Sink.Flush(ctx); err != nil {
		return t.refused(ctx, nil, err)
	}
	return nil
}

// Write adds rows to the open transaction, beginning one if needed.
// Once the transaction's producer was fenced, rows are dropped with the
// transaction: the next Flush or Commit says why (refused), and the
// engine aborts the checkpoint.
func (t *TxSink) Write(ctx context.Context, rows []connectors.Row) error {
	t.txMu.Lock()
	defer t.txMu.Unlock()
	if err := t.failed(); errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) {
		return nil
	}
	if err := t.begin(); err != nil {
		return err
	}
	return t.Sink.Write(ctx, rows)
}

// produceInTxn adds records of another writer (a changelog sharing the
// transaction) to the open transaction, beginning one if needed; promise
// hears how each went. after, when not nil, runs once the transaction
// has committed.
func (t *TxSink) produceInTxn(ctx context.Context, promise func(*kgo.Record, error), after func(context.Context), recs ...*kgo.Record) error {
	t.txMu.Lock()
	defer t.txMu.Unlock()
	if err := t.begin(); err != nil {
		return err
	}
	for _, r := range recs {
		t.cl.Produce(ctx, r, promise)
	}
	if after != nil {
		t.afterCommit = append(t.afterCommit, after)
	}
	return nil
}

// Commit writes cp's marker into the transaction and commits it: the rows
// and the marker become visible together, or not at all.
func (t *TxSink) Commit(ctx context.Context, cp connectors.Checkpoint) error {
	t.txMu.Lock()
	defer t.txMu.Unlock()
	if err := t.begin(); err != nil {
		return err
	}
	m := marker{ID: cp.ID, Positions: map[string][]byte{}}
	for id, p := range cp.Positions {
		m.Positions[id] = p
	}
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	t.cl.Produce(ctx, &kgo.Record{Topic: t.marker, Key: []byte(t.txnID), Value: v}, t.promise)
	if err := t.Sink.Flush(ctx); err != nil {
		return t.refused(ctx, cp.Positions, err)
	}
	if err := t.commitSourceOffsets(ctx, cp); err != nil {
		return fmt.Errorf("kafka sink %s: checkpoint %d: %w", t.cfg.Topic, cp.ID, t.refused(ctx, cp.Positions, notMember(err)))
	}
	holdBeforeEndTxn(t.txnID)
	if err := t.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("kafka sink %s: commit checkpoint %d: %w", t.cfg.Topic, cp.ID, t.refused(ctx, cp.Positions, err))
	}
	t.inTxn = false
	for _, f := range t.afterCommit {
		f(ctx)
	}
	t.afterCommit = nil
	return nil
}

// refused says why a flush or the commit of positions failed: with
// connectors.ErrNotMember when the source group's partitions moved while
// the transaction was open (Source.refusal), else err as it is.
func (t *TxSink) refused(ctx context.Context, positions map[string]connectors.Position, err error) error {
	if t.cfg.SourceGroup == "" {
		return err
	}
	if errors.Is(err, connectors.ErrNotMember) {
		t.fencedOut.Store(true)
		return err
	}
	if r := sourceOf(t.cfg.SourceGroup).refusal(ctx, err, t.txnGiven.Load(), positions); r != nil {
		t.fencedOut.Store(true)
		return r
	}
	return err
}

// Abort drops what was written since the last commit. After a commit
// refused because the partitions moved, a producer that can't go on (the
// partitions' next owner fenced it) is replaced by a fresh one.
func (t *TxSink) Abort(ctx context.Context) error {
	t.txMu.Lock()
	defer t.txMu.Unlock()
	return t.abort(ctx, t.fencedOut.Load())
}

// abort ends the open transaction; renew allows a fresh producer when the
// old one can't. txMu is held.
func (t *TxSink) abort(ctx context.Context, renew bool) error {
	if !t.inTxn {
		return nil
	}
	err := t.endAbort(ctx)
	if err == nil && renew {
		_, _, err = t.cl.ProducerID(ctx) // (fenced, it aborts but can't go on)
	}
	if err != nil {
		if !renew {
			return err
		}
		if err := t.renew(ctx, err); err != nil {
			return err
		}
	}
	t.fencedOut.Store(false)
	t.inTxn = false
	t.afterCommit = nil
	t.mu.Lock()
	t.err = nil
	t.mu.Unlock()
	return nil
}

// endAbort aborts the open transaction; txMu is held.
func (t *TxSink) endAbort(ctx context.Context) error {
	if err := t.cl.AbortBufferedRecords(ctx); err != nil {
		return fmt.Errorf("kafka sink %s: abort: %w", t.cfg.Topic, err)
	}
	if err := t.cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return fmt.Errorf("kafka sink %s: abort: %w", t.cfg.Topic, err)
	}
	return nil
}

// renew replaces the producer by a fresh one of the same transactional
// id, which aborts what the old one had open; txMu is held.
func (t *TxSink) renew(ctx context.Context, cause error) error {
	t.cfg.Logger.Warn("kafka: the exactly-once sink's producer is replaced by a fresh one", "topic", t.cfg.Topic, "txn", t.txnID, "cause", cause)
	t.cl.Close()
	cl, err := t.cfg.NewClient(sinkOpts(t.cfg.Topic, txOpts(t.txnID)...)...)
	if err == nil {
		if err = retryTransient(ctx, "its producer id", initProducerID(cl)); err != nil {
			cl.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("kafka sink %s: a fresh producer for transactional id %s after %v: %w", t.cfg.Topic, t.txnID, cause, err)
	}
	t.cl = cl
	return nil
}

// Committed reads the newest checkpoint marker this transactional id
// committed, with read_committed: what an aborted or fenced transaction
// wrote is never seen.
func (t *TxSink) Committed(ctx context.Context) (connectors.Checkpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := t.cfg.NewClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{t.marker: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return connectors.Checkpoint{}, err
	}
	defer cl.Close()
	var end kadm.ListedOffset
	err = retryTransient(ctx, "kafka: read "+t.marker+": its end", func(ctx context.Context) error {
		listed, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, t.marker)
		if err != nil {
			return err
		}
		var ok bool
		if end, ok = listed.Lookup(t.marker, 0); !ok {
			return fmt.Errorf("partition 0 not listed: %w", kerr.UnknownTopicOrPartition)
		}
		return end.Err
	})
	if err != nil {
		return connectors.Checkpoint{}, err
	}
	var last marker
	next := int64(0)
	for next < end.Offset {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return connectors.Checkpoint{}, fmt.Errorf("kafka: read %s: %w", t.marker, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return connectors.Checkpoint{}, fmt.Errorf("kafka: read %s: %w", t.marker, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Attrs.IsControl() || string(r.Key) != t.txnID || r.Offset >= end.Offset {
				return
			}
			var m marker
			if json.Unmarshal(r.Value, &m) == nil {
				last = m // the newest commit, by offset
			}
		})
	}
	cp := connectors.Checkpoint{ID: last.ID, Positions: map[string]connectors.Position{}}
	for id, p := range last.Positions {
		cp.Positions[id] = p
	}
	return cp, nil
}

// Close aborts an open transaction (rows after the last checkpoint) and
// disconnects.
func (t *TxSink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.txMu.Lock()
	err := t.abort(ctx, false)
	t.txMu.Unlock()
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) {
		err = nil // what it had open was aborted when it was fenced
	}
	t.cl.Close()
	return err
}

// commitSourceOffsets adds the Kafka source positions of cp to the open
// transaction as the source group's offsets (AddOffsetsToTxn and
// TxnOffsetCommit, what Kafka Streams' sendOffsetsToTransaction does).
// With the source in this process, the commit carries the group member
// and generation, so a member that lost its partitions can't commit.
func (t *TxSink) commitSourceOffsets(ctx context.Context, cp connectors.Checkpoint) error {
	if t.cfg.SourceGroup == "" {
		return nil
	}
	return commitGroupOffsetsInTxn(ctx, t.cl, t.txnID, t.cfg.SourceGroup, cp.Positions, &t.topicIDs)
}

// groupOffsets picks the Kafka partitions ("kafka:TOPIC/N") with a
// position out of positions, as offsets by topic and partition.
func groupOffsets(positions map[string]connectors.Position) (map[string]map[int32]int64, error) {
	offsets := map[string]map[int32]int64{}
	for id, pos := range positions {
		t, ok := kafkaPartition(id)
		if !ok || pos == nil {
			continue
		}
		off, err := decodePos(pos)
		if err != nil {
			return nil, err
		}
		if offsets[t.topic] == nil {
			offsets[t.topic] = map[int32]int64{}
		}
		offsets[t.topic][t.part] = off
	}
	return offsets, nil
}

// kafkaPartition reads an engine partition id, "kafka:TOPIC/N".
func kafkaPartition(id string) (tp, bool) {
	rest, ok := strings.CutPrefix(id, "kafka:")
	i := strings.LastIndexByte(rest, '/')
	if !ok || i < 0 {
		return tp{}, false
	}
	n, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil {
		return tp{}, false
	}
	return tp{rest[:i], int32(n)}, true
}

// commitGroupOffsetsInTxn adds the Kafka positions among positions to
// cl's open transaction as group's offsets. With group's source in this
// process the commit carries the member id that holds those partitions
// and the group's generation, so a member the group has dropped (a zombie
// whose partitions moved) can't commit, not even after it rejoined under
// a new member id (Source.holder refuses then, with ErrNotMember). A
// rebalance this member survives (same member id, cooperative) only
// delays the commit: it is retried with the new generation for a while.
// A partition of positions without a position (nothing of it read yet)
// rides along with the group's own offset (Source.addUnread).
func commitGroupOffsetsInTxn(ctx context.Context, cl *kgo.Client, txnID, group string, positions map[string]connectors.Position, topicIDs *map[string][16]byte) error {
	offsets, err := groupOffsets(positions)
	if err != nil {
		return err
	}
	// The member that holds the partitions, not merely the source's
	// member now (see Source.holder).
	src := sourceOf(group)
	if src != nil {
		if err := src.addUnread(ctx, positions, offsets); err != nil {
			return err
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		return err
	}
	meta := func() (string, int32, error) {
		if src != nil {
			return src.holder(positions)
		}
		return "", -1, nil
	}
	if _, _, err := meta(); err != nil {
		return err // (before the offsets join the transaction)
	}
	if beforeAddOffsets != nil {
		beforeAddOffsets(txnID)
	}
	if err := addOffsetsToTxn(ctx, cl, txnID, group, pid, epoch); err != nil {
		return err
	}
	err = retryTransient(ctx, "the IDs of the source topics", func(ctx context.Context) error {
		return loadTopicIDs(ctx, cl, topicIDs, offsets)
	})
	if err != nil {
		return err
	}
	member, generation, err := meta()
	if err != nil {
		return err
	}
	return retryTransient(ctx, "TxnOffsetCommit", func(ctx context.Context) error {
		err := txnOffsetCommit(ctx, cl, txnID, group, pid, epoch, member, generation, offsets, *topicIDs)
		switch {
		case errors.Is(err, kerr.RebalanceInProgress):
			return passing{err} // (the generation it ends with is asked next)
		case errors.Is(err, kerr.IllegalGeneration):
			// Retried only while this member stays the same member: one
			// the group dropped comes back under a new member id.
			m, g, herr := meta()
			if herr != nil {
				return herr
			}
			if m == member && m != "" {
				generation = g
				return passing{err}
			}
		}
		return err
	})
}

// addOffsetsToTxn adds group's offsets to cl's open transaction. Right
// after a transaction of the id ended (its markers still being written,
// or a next owner's fence aborting it) the coordinator answers
// CONCURRENT_TRANSACTIONS for a while: retried, with the broker's other
// passing states, until the answer is final (a fenced producer's is
// PRODUCER_FENCED or INVALID_PRODUCER_EPOCH).
func addOffsetsToTxn(ctx context.Context, cl *kgo.Client, txnID, group string, pid int64, epoch int16) error {
	return retryTransient(ctx, "add the offsets of group "+group+" to the transaction", func(ctx context.Context) error {
		add := kmsg.NewPtrAddOffsetsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, pid, epoch, group
		resp, err := add.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	})
}

func txnOffsetCommit(ctx context.Context, cl *kgo.Client, txnID, group string, pid int64, epoch int16, member string, generation int32,
	offsets map[string]map[int32]int64, topicIDs map[string][16]byte,
) error {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txnID, group, pid, epoch
	req.Generation, req.MemberID = generation, member
	for topic, parts := range offsets {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = topic, topicIDs[topic]
		for p, off := range parts {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, off, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("commit the offsets of group %s in the transaction: %w", group, err)
	}
	for _, rt := range resp.Topics {
		topic := rt.Topic
		for name, id := range topicIDs {
			if topic == "" && id == rt.TopicID {
				topic = name // newer versions answer by topic ID
			}
		}
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return fmt.Errorf("commit the offset of %s/%d for group %s in the transaction (member %q, generation %d): %w", topic, rp.Partition, group, member, generation, err)
			}
		}
	}
	return nil
}

// loadTopicIDs learns the IDs of the source topics once: newer versions
// of TxnOffsetCommit name topics by ID.
func loadTopicIDs(ctx context.Context, cl *kgo.Client, ids *map[string][16]byte, offsets map[string]map[int32]int64) error {
	var missing []string
	for topic := range offsets {
		if _, ok := (*ids)[topic]; !ok {
			missing = append(missing, topic)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	md, err := kadm.NewClient(cl).Metadata(ctx, missing...)
	if err != nil {
		return fmt.Errorf("the IDs of topics %v: %w", missing, err)
	}
	if *ids == nil {
		*ids = map[string][16]byte{}
	}
	for _, topic := range missing {
		td, ok := md.Topics[topic]
		switch {
		case !ok:
			return fmt.Errorf("the ID of topic %s: not in the metadata: %w", topic, kerr.UnknownTopicOrPartition)
		case td.Err != nil:
			return fmt.Errorf("the ID of topic %s: %w", topic, td.Err)
		}
		(*ids)[topic] = td.ID
	}
	return nil
}
