package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
)

// Repartition topics carry a pipeline's records (or a stage's rows) from
// the partitions that read them to the partition that owns their key in
// the next step, as Kafka Streams' repartition topics do
// (docs/cluster.md, "Stages and joins on a cluster").
//
// Every data record names where it came from (the upstream partition, its
// "stream") and its sequence there, in headers; the sequence grows with
// the upstream's input, and a replay after a crash writes the same record
// with the same sequence again. The reading partition keeps, per upstream
// stream, the highest sequence it has applied, in its position: so the
// dedup state is checkpointed with the state it guards, and moves with the
// partition through the changelog marker. A record at or below it is a
// replay's repeat and is skipped; the result is exact without
// transactions.
//
// Watermarks travel as marker records, one per upstream stream to every
// partition: a reading partition's event time is the minimum over its
// upstream streams (connectors.Batch.Marks, Stream), so an upstream that
// sends it no records still moves its windows on.
const (
	repartitionPrefix = "eddy-repartition."
	headerFrom        = "eddy-from"
	headerSeq         = "eddy-seq"
	headerSource      = "eddy-source"
	headerMark        = "eddy-mark"
)

// RepartitionTopic is boundary n's repartition topic of the pipeline run in
// consumer group group: eddy-repartition.GROUP.N, spelt as changelog
// topics are (ChangelogTopic).
func RepartitionTopic(group string, n int) string {
	name := ChangelogTopic(group, strconv.Itoa(n))
	return repartitionPrefix + strings.TrimPrefix(name, changelogPrefix)
}

// IsRepartitionTopic says whether topic is one eddy made for repartitioning.
func IsRepartitionTopic(topic string) bool { return strings.HasPrefix(topic, repartitionPrefix) }

// Seq is a record's place in its upstream stream: compared as (Hi, Lo). A
// record read from a partition has its offset in Hi; a stage's row its
// window's end in Hi and its rank among that window's rows in Lo.
type Seq struct {
	Hi int64 `json:"hi"`
	Lo int64 `json:"lo,omitempty"`
}

// After says whether s comes after o.
func (s Seq) After(o Seq) bool { return s.Hi > o.Hi || s.Hi == o.Hi && s.Lo > o.Lo }

func (s Seq) String() string { return strconv.FormatInt(s.Hi, 10) + "." + strconv.FormatInt(s.Lo, 10) }

func parseSeq(v string) (Seq, error) {
	hi, lo, ok := strings.Cut(v, ".")
	h, err1 := strconv.ParseInt(hi, 10, 64)
	l, err2 := strconv.ParseInt(lo, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return Seq{}, fmt.Errorf("bad sequence %q: want HI.LO", v)
	}
	return Seq{h, l}, nil
}

// EnsureRepartitionTopic creates topic with partitions partitions, or checks
// that the one there has that many: records already routed by another
// count would reach the wrong partitions.
func EnsureRepartitionTopic(ctx context.Context, conn Conn, topic string, partitions int32) error {
	if partitions < 1 {
		return fmt.Errorf("repartition topic %s: %d partitions: want 1 or more", topic, partitions)
	}
	cl, err := conn.NewClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	brokers := strings.Join(conn.Brokers, ",")
	res, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafka %s: create the repartition topic %s: %w", brokers, topic, err)
	}
	for {
		// Just created, here or by another node: wait until its partitions
		// show (a reader's metadata check would find no topic before) and
		// judge their count.
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return fmt.Errorf("kafka %s: repartition topic %s: metadata: %w", brokers, topic, err)
		}
		if td, ok := md.Topics[topic]; ok && td.Err == nil && len(td.Partitions) > 0 {
			if n := int32(len(td.Partitions)); n != partitions {
				return fmt.Errorf("kafka %s: repartition topic %s has %d partitions, and this run routes to %d: records of one key would reach two partitions; delete the topic (and the group's state) or run with --repartition-partitions %d", brokers, topic, n, partitions, n)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka %s: repartition topic %s: its partitions did not show: %w", brokers, topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RepartitionPartition is the partition of n that key goes to (FNV-1a: the
// same on every node and version).
func RepartitionPartition(key string, n int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int32(h.Sum32() % uint32(n))
}

// RepartitionRecord is one record for a repartition topic.
type RepartitionRecord struct {
	// Key routes the record; Value is what the next step reads.
	Key   string
	Value []byte
	// From names the upstream stream, Seq the record's place in it;
	// Source the pipeline's source it belongs to (several sources).
	From, Source string
	Seq          Seq
	// Time is the record's time at its source (the Kafka timestamp), which
	// the reader sees as its own.
	Time time.Time
}

// RepartitionWriter writes one upstream partition's records to a
// repartition topic: records by key, and markers to every partition, in
// transactions that also commit the upstream's offset in its group, as
// Kafka Streams' exactly-once does. Its transactional id names the
// upstream partition, so the partition's next owner fences this writer
// (its later writes fail) and aborts what it left open: a reader
// (read_committed) sees each upstream record once, in its offset order,
// whatever node wrote it, killed, paused or revoked mid-batch.
type RepartitionWriter struct {
	cl       *kgo.Client
	topic    string
	parts    int32
	txnID    string
	inTxn    bool
	topicIDs map[string][16]byte // the upstream topics, for TxnOffsetCommit

	mu  sync.Mutex
	err error // the first failed write of the open transaction
}

// RepartitionTxnID is the transactional id of the writer of upstream
// partition id ("kafka:TOPIC/N") in group: one per upstream partition, the
// same on every node, so that its next owner fences the one before.
func RepartitionTxnID(group, id string) string {
	return "eddy-shuffle." + group + "." + strings.TrimPrefix(id, "kafka:")
}

// NewRepartitionWriter writes topic, of partitions partitions, on conn's
// cluster, under transactional id txnID. It fences the id's previous
// writer and waits until what that one left open is aborted (or its
// commit completed), so the group's offset it then reads is final.
func NewRepartitionWriter(ctx context.Context, conn Conn, topic string, partitions int32, txnID string) (*RepartitionWriter, error) {
	cl, err := conn.NewClient(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID(txnID), kgo.TransactionTimeout(repartitionTxnTimeout))
	if err != nil {
		return nil, err
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("repartition topic %s: transactional id %s: %w", topic, txnID, err)
	}
	return &RepartitionWriter{cl: cl, topic: topic, parts: partitions, txnID: txnID}, nil
}

// repartitionTxnTimeout bounds how long an open transaction of a writer
// that vanished (and whose partition nobody takes over) holds back the
// repartition topic's readers.
const repartitionTxnTimeout = 30 * time.Second

// begin opens a transaction unless one is open.
func (w *RepartitionWriter) begin() error {
	if w.inTxn {
		return nil
	}
	if err := w.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("repartition topic %s: begin a transaction: %w", w.topic, err)
	}
	w.inTxn = true
	return nil
}

// Write sends recs in the open transaction (opening one); Commit
// completes it.
func (w *RepartitionWriter) Write(ctx context.Context, recs []RepartitionRecord) error {
	if err := w.begin(); err != nil {
		return err
	}
	for _, r := range recs {
		kr := &kgo.Record{Key: []byte(r.Key), Value: r.Value, Partition: RepartitionPartition(r.Key, w.parts), Timestamp: r.Time,
			Headers: []kgo.RecordHeader{{Key: headerFrom, Value: []byte(r.From)}, {Key: headerSeq, Value: []byte(r.Seq.String())}}}
		if r.Source != "" {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: headerSource, Value: []byte(r.Source)})
		}
		w.cl.Produce(ctx, kr, w.promise)
	}
	return nil
}

// Mark tells every partition, in the open transaction, that stream
// from's event time has reached at (Unix ms): no record of from older
// than that is still to come.
func (w *RepartitionWriter) Mark(ctx context.Context, from string, at int64) error {
	if err := w.begin(); err != nil {
		return err
	}
	for p := range w.parts {
		w.cl.Produce(ctx, &kgo.Record{Partition: p, Headers: []kgo.RecordHeader{
			{Key: headerFrom, Value: []byte(from)}, {Key: headerMark, Value: []byte(strconv.FormatInt(at, 10))}}}, w.promise)
	}
	return nil
}

func (w *RepartitionWriter) promise(_ *kgo.Record, err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = fmt.Errorf("repartition topic %s: write: %w", w.topic, err)
	}
}

// Commit commits the open transaction with pos as the upstream's offset
// in group (its member and generation checked, as the sinks' are): the
// records written since the last commit and the offset after them become
// visible together, or not at all. A writer fenced by the partition's
// next owner fails with an error wrapping kerr.ProducerFenced (or
// InvalidProducerEpoch).
func (w *RepartitionWriter) Commit(ctx context.Context, group string, positions map[string]connectors.Position) error {
	if err := w.begin(); err != nil {
		return err
	}
	if err := w.Flush(ctx); err != nil {
		return err
	}
	if err := commitGroupOffsetsInTxn(ctx, w.cl, w.txnID, group, positions, &w.topicIDs); err != nil {
		return fmt.Errorf("repartition topic %s: %w", w.topic, err)
	}
	if err := w.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("repartition topic %s: commit: %w", w.topic, err)
	}
	w.inTxn = false
	return nil
}

// Flush waits until the open transaction's writes are acknowledged (not
// committed), and reports the first that failed.
func (w *RepartitionWriter) Flush(ctx context.Context) error {
	if err := w.cl.Flush(ctx); err != nil {
		return fmt.Errorf("repartition topic %s: flush: %w", w.topic, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Fenced says whether err means another writer took this one's
// transactional id over: the upstream partition has a new owner.
func Fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, connectors.ErrNotMember)
}

// Close aborts the open transaction, if any (its records are never
// seen), and disconnects.
func (w *RepartitionWriter) Close() {
	if w.inTxn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if w.cl.AbortBufferedRecords(ctx) == nil {
			w.cl.EndTransaction(ctx, kgo.TryAbort)
		}
		cancel()
	}
	w.cl.Close()
}

// repartitionIn is a repartition partition's reading state: the highest
// sequence applied per upstream stream.
type repartitionIn struct {
	applied map[string]Seq
}

// header returns r's header key's value.
func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// decodeRepartition classifies a record of a repartition topic: a marker
// (mark set), a repeat to skip, or a record to apply (which it notes as
// applied). A record without eddy's headers is an error: the topic is
// eddy's own, and anything else there would be read wrong.
func (in *repartitionIn) decode(r *kgo.Record) (rec connectors.Record, from, source string, mark *int64, skip bool, err error) {
	from, ok := header(r, headerFrom)
	if !ok {
		return rec, "", "", nil, false, fmt.Errorf("repartition topic %s partition %d offset %d: a record without the %s header (not written by eddy?)", r.Topic, r.Partition, r.Offset, headerFrom)
	}
	if v, ok := header(r, headerMark); ok {
		at, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return rec, "", "", nil, false, fmt.Errorf("repartition topic %s partition %d offset %d: bad marker %q", r.Topic, r.Partition, r.Offset, v)
		}
		return rec, from, "", &at, false, nil
	}
	v, ok := header(r, headerSeq)
	if !ok {
		return rec, "", "", nil, false, fmt.Errorf("repartition topic %s partition %d offset %d: a record without the %s header", r.Topic, r.Partition, r.Offset, headerSeq)
	}
	seq, err := parseSeq(v)
	if err != nil {
		return rec, "", "", nil, false, fmt.Errorf("repartition topic %s partition %d offset %d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	if last, ok := in.applied[from]; ok && !seq.After(last) {
		return rec, from, "", nil, true, nil
	}
	in.applied[from] = seq
	source, _ = header(r, headerSource)
	return connectors.Record{Key: r.Key, Value: r.Value, Time: r.Timestamp, Seq: r.Offset}, from, source, nil, false, nil
}

// takeRepartition is take for a repartition topic: it returns the records
// of one upstream stream in a row (a batch has one Stream), skipping a
// replay's repeats, with the markers read on the way in Marks; s.mu is
// held.
func (p *partition) takeRepartition() (connectors.Batch, bool) {
	s := p.s
	b := connectors.Batch{Where: p.where, Unit: "offset"}
	taken, i := 0, 0
	for ; i < len(p.buf); i++ {
		r := p.buf[i]
		if r.Attrs.IsControl() {
			p.pos = r.Offset + 1
			continue
		}
		if len(b.Records) == s.cfg.Batch {
			break
		}
		if from, _ := header(r, headerFrom); len(b.Records) > 0 && from != b.Stream {
			if _, mark := header(r, headerMark); !mark {
				break // another stream's record: the next batch
			}
		}
		rec, from, source, mark, skip, err := p.in.decode(r)
		if err != nil {
			p.failed = err
			return connectors.Batch{}, false
		}
		taken++
		p.pos = r.Offset + 1
		switch {
		case mark != nil:
			if b.Marks == nil {
				b.Marks = map[string]int64{}
			}
			if old, ok := b.Marks[from]; !ok || *mark > old {
				b.Marks[from] = *mark
			}
		case !skip:
			b.Records = append(b.Records, rec)
			b.Stream, b.Source = from, source
		}
	}
	p.took(i)
	p.bufRecords -= taken
	if p.full && len(p.buf) <= s.cfg.Buffer/2 {
		p.full = false
		p.f.resume(p)
	}
	b.End = p.position()
	b.CaughtUp = len(p.buf) == 0 && p.end >= 0 && p.pos >= p.end
	if len(b.Records) == 0 && b.Marks == nil && !b.CaughtUp {
		return connectors.Batch{}, false // repeats and control records only
	}
	p.returned = true
	return b, true
}

// Streams names a repartition or stage partition's upstream streams (the
// source's streams= parameter): its event time is their minimum. Other
// partitions have none.
func (p *partition) Streams() []string {
	if p.in == nil && !p.staged {
		return nil
	}
	return p.s.cfg.Upstreams
}

// Marked says the partition's streams move their event time by markers:
// a stream quiet for a while is not idle (its upstream may be moving to
// another node), it holds the event time back until its marker comes.
func (p *partition) Marked() bool { return p.in != nil || (p.staged && len(p.s.cfg.Upstreams) > 0) }

// repartitionPos is a repartition partition's position: its offset and the
// highest sequence applied from each upstream stream.
type repartitionPos struct {
	Offset  int64          `json:"offset"`
	Applied map[string]Seq `json:"applied,omitempty"`
}

func encodeRepartitionPos(off int64, applied map[string]Seq) connectors.Position {
	b, _ := json.Marshal(repartitionPos{off, applied})
	return b
}

// seekApplied notes what a repartition partition has applied as of pos
// (nothing for nil: the start, or the group's offset without a
// checkpoint), for the seek to pos to set (seeked) together with the
// offset: a Read between the two would apply the old buffer's records
// over the checkpoint's sequences, and then skip them after the seek.
func (p *partition) seekApplied(pos connectors.Position) error {
	var rp repartitionPos
	if p.in != nil && pos != nil {
		if err := json.Unmarshal(pos, &rp); err != nil {
			return fmt.Errorf("kafka: bad position %q: %w", pos, err)
		}
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.seekTo = map[string]Seq{}
	for k, v := range rp.Applied {
		p.seekTo[k] = v
	}
	return nil
}

// seekedTo applies what seekApplied noted, as the seek points the partition
// at its new offset; s.mu is held. It also clears a read failure.
func (p *partition) seekedTo() {
	p.failed = nil
	if p.in != nil && p.seekTo != nil {
		p.in.applied = p.seekTo
	}
	p.seekTo = nil
}

// StageTopic is the topic that carries the rows of stage n-1 of the
// pipeline run in group to the owners of stage n's keys:
// eddy-stages.GROUP.N. Its rows are written in the writing engine's
// changelog transactions (each row once, read_committed: no sequences),
// each to the partition of the next stage's key, with watermark markers
// (stagemarks.go).
func StageTopic(group string, n int) string {
	return stagePrefix + strings.TrimPrefix(RepartitionTopic(group, n), repartitionPrefix)
}

const stagePrefix = "eddy-stages."
