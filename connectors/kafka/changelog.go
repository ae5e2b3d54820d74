package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
)

// The changelog of a kafka:// source: for each source topic T, a compacted
// topic eddy-changelog.GROUP.T with T's partition count, partition n
// holding the state of the engine's partition kafka:T/n. A checkpoint is
// one Kafka transaction: the changed keys, then one marker record per
// partition (key changelogMarkerKey, value a ChangelogMarker as JSON).
// Restore reads with read_committed, so an aborted checkpoint, or the
// open transaction of a node that died, is never seen.

const (
	changelogPrefix    = "eddy-changelog."
	changelogMarkerKey = "\x00eddy/marker"
)

// changelogTxnTimeout bounds how long a dead node's open transaction holds
// back the changelog's readers (the broker aborts it then), and so how
// long a checkpoint may take from its first change written to its commit
// (writes, then the sinks' flush). A minute: far above a checkpoint of a
// few hundred thousand keys on a loaded 2-core machine (20s was not), and
// still well below Kafka's 15-minute cap. A checkpoint that takes longer
// still fails with ErrTxnLost, naming the cause. (A var: tests shorten it
// to force the broker's abort.)
var changelogTxnTimeout = time.Minute

// beforeEndTxn, when set (by tests), runs just before a changelog's or a
// kafka sink's transaction ends (its marker, and its group offsets under
// exactly-once, joined it), with the transaction's id.
var beforeEndTxn atomic.Pointer[func(txnID string)]

// holdBeforeEndTxn runs beforeEndTxn, when set, for txnID.
func holdBeforeEndTxn(txnID string) {
	if hold := beforeEndTxn.Load(); hold != nil {
		(*hold)(txnID)
	}
}

const (
	// restoreProgressEvery is how many records Restore reads between two
	// progress calls.
	restoreProgressEvery = 50_000
)

// ChangelogTopic is the changelog topic of source topic topic in consumer
// group group: eddy-changelog.GROUP.TOPIC, with characters Kafka does not
// allow replaced by '_' and, past Kafka's 249 characters, shortened with a
// hash of the whole.
func ChangelogTopic(group, topic string) string {
	b := []byte(changelogPrefix + group + "." + topic)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 249 {
		h := fnv.New64a()
		h.Write(b)
		b = append(b[:232], '-')
		b = hex.AppendEncode(b, h.Sum(nil))
	}
	return string(b)
}

// changelogTopic is where one source topic's changelog goes.
type changelogTopic struct {
	name  string
	parts int32
}

// changelog is a kafka:// source's connectors.Changelog.
type changelog struct {
	src      *Source
	conn     Conn
	pipeline string
	group    string
	txnID    string
	topics   map[string]changelogTopic // by source topic
	cl       *kgo.Client               // admin requests (the first producer, too)
	prod     *kgo.Client               // the transactional producer (txMu); nil after a failed renew
	adm      *kadm.Client

	// txMu is held shared by Write and exclusively by Commit, Abort and
	// ShareTransaction: nothing is produced while a transaction ends.
	txMu    sync.RWMutex
	beginMu sync.Mutex
	inTxn   atomic.Bool // own transaction open
	wrote   atomic.Bool // written since the last Commit or Abort
	shared  *TxSink     // writing into this sink's transactions
	stage   *stageFence // a stage topic whose dead writers End fences (stagefence.go)

	errMu sync.Mutex
	err   error // the first failed write since the last Commit or Abort

	topicIDs  map[string][16]byte // source topics, for TxnOffsetCommit
	txnGiven  atomic.Int64        // the source's given count when the own transaction began
	closeOnce sync.Once
}

var (
	_ connectors.ChangelogSource = (*Source)(nil)
	_ connectors.ChangelogSharer = (*changelog)(nil)
)

// Changelog opens the changelog of the source's topics, creating the
// changelog topics that are missing. pipeline only names the state's owner
// in errors: the consumer group is what ties the nodes of a pipeline
// together, so it names the topics. The producer's transactional id is
// eddy.changelog.GROUP.INSTANCE with static membership (a restarted node
// fences its predecessor and aborts what that one left open), else a
// random suffix (a dead node's transaction times out after
// changelogTxnTimeout).
func (s *Source) Changelog(pipeline string) (connectors.Changelog, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	suffix := s.cfg.Instance
	if suffix == "" {
		suffix = rand.Text()[:12]
	}
	c := &changelog{src: s, conn: s.cfg.Conn, pipeline: pipeline, group: s.cfg.Group,
		txnID: "eddy.changelog." + s.cfg.Group + "." + suffix, topics: map[string]changelogTopic{}}
	s.changelogTxn.Store(&c.txnID)
	cl, err := c.newProducer()
	if err != nil {
		return nil, err
	}
	c.cl, c.adm, c.prod = cl, kadm.NewClient(cl), cl
	if err := c.ensureTopics(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	if err := c.initProducer(ctx, cl); err != nil {
		cl.Close()
		return nil, err
	}
	return c, nil
}

// newProducer is a client for the changelog's transactional id.
func (c *changelog) newProducer() (*kgo.Client, error) {
	return c.src.cfg.NewClient(
		kgo.TransactionalID(c.txnID),
		kgo.TransactionTimeout(changelogTxnTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RecordDeliveryTimeout(changelogTxnTimeout),
		kgo.MaxBufferedRecords(1<<17),
		// A partition's leader that moved (or a topic just created) is
		// looked up again at once, not after franz-go's default 5s: a
		// checkpoint waits for it.
		kgo.MetadataMinAge(250*time.Millisecond),
	)
}

// initProducer gets cl its producer id and epoch, which fences every
// earlier producer of the transactional id and aborts what it left open.
func (c *changelog) initProducer(ctx context.Context, cl *kgo.Client) error {
	return retryTransient(ctx, fmt.Sprintf("kafka changelog of %s: transactional id %s", c.what(), c.txnID), initProducerID(cl))
}

// renew replaces the transactional producer by a fresh one of the same
// id; txMu is held. After the broker aborted a transaction that outlived
// its timeout, it bumped the producer's epoch: the old producer can't go
// on (with Kafka's transaction.version 2, not even by aborting).
func (c *changelog) renew(ctx context.Context, cause error) error {
	c.src.cfg.Logger.Warn("kafka: the changelog's producer is replaced by a fresh one", "group", c.group, "txn", c.txnID, "cause", cause)
	if c.prod != c.cl {
		c.prod.Close()
	}
	c.prod = nil
	cl, err := c.newProducer()
	if err != nil {
		return fmt.Errorf("kafka changelog of %s: a fresh producer after %v: %w", c.what(), cause, err)
	}
	if err := c.initProducer(ctx, cl); err != nil {
		cl.Close()
		return fmt.Errorf("%w (a fresh producer after %v)", err, cause)
	}
	c.prod = cl
	return nil
}

// lost marks with connectors.ErrTxnLost the errors that say the broker
// dropped the open transaction: it timed out (the broker bumped the
// producer's epoch; a commit after the broker finished its abort gets
// INVALID_TXN_STATE instead, as a fresh broker in CI answered) or its
// records were not delivered in time.
func lost(err error) error {
	if errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.InvalidTxnState) ||
		errors.Is(err, kerr.TransactionAbortable) || errors.Is(err, kgo.ErrRecordTimeout) {
		return fmt.Errorf("%w: %w", connectors.ErrTxnLost, err)
	}
	return err
}

func (c *changelog) what() string {
	if c.pipeline != "" {
		return "pipeline " + c.pipeline + " (group " + c.group + ")"
	}
	return "group " + c.group
}

// ensureTopics creates the missing changelog topics with their source
// topics' partition counts and checks the counts of those that exist.
func (c *changelog) ensureTopics(ctx context.Context) error {
	brokers := strings.Join(c.conn.Brokers, ",")
	md, err := c.adm.Metadata(ctx, c.conn.Topics...)
	if err != nil {
		return c.conn.Explain(fmt.Errorf("changelog of %s: metadata of %v: %w", c.what(), c.conn.Topics, err))
	}
	var existing []string
	for _, t := range c.conn.Topics {
		td, ok := md.Topics[t]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			return errMissingTopic(c.conn, t)
		case td.Err != nil:
			return fmt.Errorf("kafka %s: changelog of %s: source topic %q: %w", brokers, c.what(), t, td.Err)
		}
		ct := changelogTopic{name: ChangelogTopic(c.group, t), parts: int32(len(td.Partitions))}
		compact := "compact"
		res, err := c.adm.CreateTopic(ctx, ct.parts, -1, map[string]*string{"cleanup.policy": &compact}, ct.name)
		if err == nil {
			err = res.Err
		}
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			existing = append(existing, ct.name)
		case err != nil:
			return fmt.Errorf("kafka %s: create the changelog topic %s of %s: %w", brokers, ct.name, c.what(), err)
		}
		c.topics[t] = ct
	}
	if len(existing) > 0 {
		// A topic another node has just created may not show its
		// partitions yet: look again (until ctx ends: a minute; on a
		// loaded machine 5 s were not enough) before judging.
		var md kadm.Metadata
		for {
			var err error
			md, err = c.adm.Metadata(ctx, existing...)
			if err != nil {
				return fmt.Errorf("kafka %s: changelog of %s: metadata of %v: %w", brokers, c.what(), existing, err)
			}
			settled := true
			for _, name := range existing {
				if td, ok := md.Topics[name]; !ok || td.Err != nil || len(td.Partitions) == 0 {
					settled = false
				}
			}
			if settled || ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for src, ct := range c.topics {
			if !slices.Contains(existing, ct.name) {
				continue
			}
			td, ok := md.Topics[ct.name]
			if !ok || td.Err != nil {
				return fmt.Errorf("kafka %s: changelog topic %s: %v", brokers, ct.name, td.Err)
			}
			if n := int32(len(td.Partitions)); n != ct.parts {
				return fmt.Errorf("kafka %s: changelog topic %s has %d partitions but source topic %s has %d: they must match, partition for partition (was %s repartitioned? delete %s and eddy creates it again; state held only in the changelog is then lost)",
					brokers, ct.name, n, src, ct.parts, src, ct.name)
			}
		}
		c.warnNotCompacted(ctx, existing)
	}
	return c.waitLeaders(ctx)
}

// warnNotCompacted warns about an existing changelog topic that deletes
// old records instead of compacting them: its state goes with them.
func (c *changelog) warnNotCompacted(ctx context.Context, topics []string) {
	rcs, err := c.adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return
	}
	for _, rc := range rcs {
		for _, cfg := range rc.Configs {
			if cfg.Key == "cleanup.policy" && cfg.Value != nil && !strings.Contains(*cfg.Value, "compact") {
				c.src.cfg.Logger.Warn("kafka: the changelog topic is not compacted: state older than its retention is lost", "topic", rc.Name, "cleanup.policy", *cfg.Value)
			}
		}
	}
}

// waitLeaders waits until every changelog partition has a leader, so the
// first checkpoint does not race the topics' creation.
func (c *changelog) waitLeaders(ctx context.Context) error {
	var names []string
	for _, ct := range c.topics {
		names = append(names, ct.name)
	}
	for {
		md, err := c.adm.Metadata(ctx, names...)
		if err == nil {
			err = func() error {
				for src, ct := range c.topics {
					td, ok := md.Topics[ct.name]
					switch {
					case !ok:
						return fmt.Errorf("changelog topic %s (of %s) not in the metadata", ct.name, src)
					case td.Err != nil:
						return fmt.Errorf("changelog topic %s: %w", ct.name, td.Err)
					case int32(len(td.Partitions)) != ct.parts:
						return fmt.Errorf("changelog topic %s: %d of %d partitions in the metadata", ct.name, len(td.Partitions), ct.parts)
					}
					for _, p := range td.Partitions {
						if p.Err != nil || p.Leader < 0 {
							return fmt.Errorf("changelog topic %s: partition %d has no leader (%v)", ct.name, p.Partition, p.Err)
						}
					}
				}
				return nil
			}()
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka %s: changelog of %s: %w", strings.Join(c.conn.Brokers, ","), c.what(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// route maps an engine partition, kafka:TOPIC/N, to partition N of
// TOPIC's changelog topic.
func (c *changelog) route(partition string) (string, int32, error) {
	rest, ok := strings.CutPrefix(partition, "kafka:")
	i := strings.LastIndexByte(rest, '/')
	if ok && i > 0 {
		if ct, found := c.topics[rest[:i]]; found {
			n, err := strconv.ParseInt(rest[i+1:], 10, 32)
			if err == nil && n >= 0 && int32(n) < ct.parts {
				return ct.name, int32(n), nil
			}
			if err == nil {
				return "", 0, fmt.Errorf("kafka changelog of %s: partition %q: topic %s has partitions 0 to %d", c.what(), partition, rest[:i], ct.parts-1)
			}
		}
	}
	return "", 0, fmt.Errorf("kafka changelog of %s: partition %q is not one of this source's (kafka:TOPIC/N, TOPIC one of %v)", c.what(), partition, c.conn.Topics)
}

func (c *changelog) fail(err error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
}

func (c *changelog) failed() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *changelog) clearErr() {
	c.errMu.Lock()
	c.err = nil
	c.errMu.Unlock()
}

func (c *changelog) promise(r *kgo.Record, err error) {
	if err != nil {
		c.fail(fmt.Errorf("kafka changelog %s/%d: write: %w", r.Topic, r.Partition, err))
	}
}

// begin opens the own transaction unless one is open; txMu is held
// (shared: Writes begin concurrently).
func (c *changelog) begin() error {
	if c.inTxn.Load() {
		return nil
	}
	c.beginMu.Lock()
	defer c.beginMu.Unlock()
	if c.inTxn.Load() {
		return nil
	}
	if c.prod == nil {
		return fmt.Errorf("kafka changelog of %s: no producer (a fresh one failed)", c.what())
	}
	c.txnGiven.Store(c.src.given.Load())
	if err := c.prod.BeginTransaction(); err != nil {
		return fmt.Errorf("kafka changelog of %s: begin transaction: %w", c.what(), err)
	}
	c.inTxn.Store(true)
	return nil
}

// Write sends key = value (value nil: a tombstone) to the partition's
// changelog partition inside the open transaction, beginning one if none
// is open. A failure shows at Commit.
func (c *changelog) Write(partition string, key, value []byte) {
	topic, part, err := c.route(partition)
	if err != nil {
		c.fail(err)
		return
	}
	rec := &kgo.Record{Topic: topic, Partition: part, Key: key, Value: value}
	c.txMu.RLock()
	defer c.txMu.RUnlock()
	c.wrote.Store(true)
	if c.shared != nil {
		if err := c.shared.produceInTxn(context.Background(), c.promise, nil, rec); err != nil {
			c.fail(err)
		}
		return
	}
	if err := c.begin(); err != nil {
		c.fail(err)
		return
	}
	c.prod.Produce(context.Background(), rec, c.promise)
}

// Commit writes one marker per partition of markers, then commits the
// transaction. It returns per partition the offset just after the marker.
// Not the marker's offset + 2, after the control record that ends the
// transaction: Kafka writes that record at EndTransaction, and when this
// node was held up between its marker and its commit (paused past its
// session) the node that took the partition over may have written records
// in between; a next Restore from + 2 would skip one of them, and the
// partition's state would read low. From + 1 it reads them, or only the
// control record. Shared with a sink, it only writes and flushes: the
// sink's Commit ends the transaction (and writes that control record).
func (c *changelog) Commit(ctx context.Context, markers map[string]connectors.ChangelogMarker) (map[string]int64, error) {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	if len(markers) == 0 && !c.wrote.Load() {
		return map[string]int64{}, nil
	}
	if err := c.failed(); err != nil {
		return nil, lost(err)
	}
	ms, err := c.markerRecords(markers)
	if err != nil {
		return nil, err
	}
	if c.shared != nil {
		return c.commitShared(ctx, ms)
	}
	return c.commitOwn(ctx, ms)
}

// commitOwn commits markers in the changelog's own transaction.
func (c *changelog) commitOwn(ctx context.Context, ms *markerRecs) (map[string]int64, error) {
	if err := c.begin(); err != nil {
		return nil, c.refused(ctx, ms.positions, err)
	}
	for _, r := range ms.recs {
		c.prod.Produce(ctx, r, ms.wrote)
	}
	if err := c.prod.Flush(ctx); err != nil {
		return nil, fmt.Errorf("kafka changelog of %s: flush: %w", c.what(), c.refused(ctx, ms.positions, err))
	}
	if err := c.failed(); err != nil {
		return nil, c.refused(ctx, ms.positions, err)
	}
	if c.fenced() {
		if err := commitGroupOffsetsInTxn(ctx, c.prod, c.txnID, c.group, ms.positions, &c.topicIDs); err != nil {
			return nil, fmt.Errorf("kafka changelog of %s: %w", c.what(), c.refused(ctx, ms.positions, notMember(err)))
		}
	}
	holdBeforeEndTxn(c.txnID)
	if err := c.prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return nil, fmt.Errorf("kafka changelog of %s: commit: %w", c.what(), c.refused(ctx, ms.positions, err))
	}
	c.inTxn.Store(false)
	c.wrote.Store(false)
	offsets := ms.written()
	c.waitVisible(ctx, offsets)
	return offsets, nil
}

// commitShared writes markers into the shared sink's open transaction,
// which the sink's Commit ends.
func (c *changelog) commitShared(ctx context.Context, ms *markerRecs) (map[string]int64, error) {
	sh := c.shared
	// The sink's Commit waits, after its EndTransaction, until the
	// markers are visible (see waitVisible).
	wait := func(ctx context.Context) { c.waitVisible(ctx, ms.written()) }
	if err := sh.produceInTxn(ctx, ms.wrote, wait, ms.recs...); err != nil {
		return nil, err
	}
	if err := sh.cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("kafka changelog of %s: flush: %w", c.what(), c.refused(ctx, ms.positions, err))
	}
	if err := c.failed(); err != nil {
		return nil, c.refused(ctx, ms.positions, err)
	}
	if c.fenced() {
		own := ms.positions
		if sh.cfg.SourceGroup == c.group {
			own = unread(ms.positions) // the sink's Commit adds the others
		}
		if err := commitGroupOffsetsInTxn(ctx, sh.cl, sh.txnID, c.group, own, &c.topicIDs); err != nil {
			return nil, fmt.Errorf("kafka changelog of %s: %w", c.what(), c.refused(ctx, ms.positions, notMember(err)))
		}
	}
	c.wrote.Store(false)
	return ms.written(), nil
}

// fenced says whether this changelog's commits carry its group's offsets,
// with the member and generation that hold them (as Kafka Streams'
// sendOffsetsToTransaction does): a node the group has dropped, whose
// partitions moved on, can't commit a checkpoint into their changelog.
// They do when the group's source runs in this process.
func (c *changelog) fenced() bool {
	return sourceOf(c.group) == c.src && c.src != nil && c.src.cl != nil
}

// markerRecs are a commit's marker records, one per partition, and the
// offsets their writes tell.
type markerRecs struct {
	recs      []*kgo.Record
	ids       map[*kgo.Record]string
	positions map[string]connectors.Position // by partition, nil: none read
	failed    func(*kgo.Record, error)       // a write that failed

	mu      sync.Mutex
	offsets map[string]int64 // by partition, just after its marker
}

// markerRecords makes the marker records of markers.
func (c *changelog) markerRecords(markers map[string]connectors.ChangelogMarker) (*markerRecs, error) {
	ms := &markerRecs{recs: make([]*kgo.Record, 0, len(markers)), ids: make(map[*kgo.Record]string, len(markers)),
		positions: map[string]connectors.Position{}, offsets: map[string]int64{}, failed: c.promise}
	for id, m := range markers {
		topic, part, err := c.route(id)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		r := &kgo.Record{Topic: topic, Partition: part, Key: []byte(changelogMarkerKey), Value: v}
		ms.recs = append(ms.recs, r)
		ms.ids[r] = id
		ms.positions[id] = m.Position
	}
	return ms, nil
}

// wrote is a marker's promise: it notes where the marker was written,
// or fails the commit.
func (ms *markerRecs) wrote(r *kgo.Record, err error) {
	if err != nil {
		ms.failed(r, err)
		return
	}
	ms.mu.Lock()
	// Just after the marker, not after the commit's control record too:
	// that one is written at EndTransaction, and a node that took the
	// partition over while this commit was held up (a pause past the
	// session) may have written in between. A restore from here reads
	// them; with nothing between, it reads only the control record.
	ms.offsets[ms.ids[r]] = r.Offset + 1
	ms.mu.Unlock()
}

// written is a copy of the offsets noted so far.
func (ms *markerRecs) written() map[string]int64 {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return maps.Clone(ms.offsets)
}

// unread picks the partitions of positions that have no position: the
// sink's checkpoint leaves them out of its offsets.
func unread(positions map[string]connectors.Position) map[string]connectors.Position {
	m := map[string]connectors.Position{}
	for id, pos := range positions {
		if pos == nil {
			m[id] = nil
		}
	}
	return m
}

// waitVisible waits, for a few seconds at most, until the control records
// that end the transaction are in the changelog partitions (their high
// watermarks pass offsets). EndTransaction returns once the transaction
// coordinator has decided; the control records follow a few milliseconds
// later, and a node reading End before them would miss the checkpoint.
// (Not the last stable offset: another node's open transaction, a
// zombie's, would hold that back until it times out.)
func (c *changelog) waitVisible(ctx context.Context, offsets map[string]int64) {
	want := map[string]map[int32]int64{}
	var topics []string
	for id, off := range offsets {
		topic, part, err := c.route(id)
		if err != nil {
			continue
		}
		if want[topic] == nil {
			want[topic] = map[int32]int64{}
			topics = append(topics, topic)
		}
		want[topic][part] = off + 1 // the control record after the marker
	}
	if len(topics) == 0 {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for pause := time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		listed, err := c.adm.ListEndOffsets(ctx, topics...)
		seen := err == nil
		for topic, parts := range want {
			for part, off := range parts {
				if o, ok := listed.Lookup(topic, part); !ok || o.Err != nil || o.Offset < off {
					seen = false
				}
			}
		}
		if seen || ctx.Err() != nil {
			return
		}
		if time.Now().After(deadline) {
			c.src.cfg.Logger.Warn("kafka: a committed checkpoint's control records are not in the changelog after 5s", "group", c.group, "offsets", offsets, "err", err)
			return
		}
		time.Sleep(pause)
	}
}

// refused says why the commit of positions failed: with
// connectors.ErrNotMember when this node's partitions moved while the
// transaction was open (Source.refusal), else as lost says.
func (c *changelog) refused(ctx context.Context, positions map[string]connectors.Position, err error) error {
	if errors.Is(err, connectors.ErrNotMember) {
		return err
	}
	if c.src != nil && sourceOf(c.group) == c.src {
		since := c.txnGiven.Load()
		if c.shared != nil {
			since = c.shared.txnGiven.Load()
		}
		if r := c.src.refusal(ctx, err, since, positions); r != nil {
			return r
		}
	}
	return lost(err)
}

// notMember marks the group's refusals that say this member is out of the
// group (its partitions have moved) with connectors.ErrNotMember.
func notMember(err error) error {
	if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.FencedInstanceID) {
		return fmt.Errorf("%w: %w", connectors.ErrNotMember, err)
	}
	return err
}

// Abort drops what was written since the last Commit. Shared with a sink
// it only forgets: the sink's Abort drops the transaction.
func (c *changelog) Abort(ctx context.Context) error {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	return c.abort(ctx, true)
}

// abort ends the own transaction; renew allows a fresh producer when the
// old one can't (not at Close: a fresh producer would fence a newer
// process of the same transactional id). txMu is held.
func (c *changelog) abort(ctx context.Context, renew bool) error {
	c.wrote.Store(false)
	if c.shared == nil && (c.inTxn.Load() || c.prod == nil) {
		err := c.endAbort(ctx)
		if err == nil && renew {
			// A fenced producer aborts but can't go on; nor can one whose
			// commit the broker refused at its end (INVALID_TXN_STATE: it
			// had aborted the transaction itself), which leaves the client
			// no transaction to abort, so endAbort succeeds.
			_, _, err = c.prod.ProducerID(ctx)
		}
		if err != nil && !renew {
			if c.prod != nil && !errors.Is(lost(err), connectors.ErrTxnLost) && !errors.Is(err, kerr.ProducerFenced) {
				return err
			}
			// Nothing of its own is open: the broker aborted it, or
			// whoever fenced the producer did.
		} else if err != nil {
			// The broker dropped the transaction already (or the
			// producer is unusable): a fresh producer fences the old
			// one, which aborts whatever it still has open.
			if err := c.renew(ctx, err); err != nil {
				return err
			}
		}
		c.inTxn.Store(false)
	}
	c.clearErr()
	return nil
}

// endAbort aborts the own transaction with the producer that opened it.
func (c *changelog) endAbort(ctx context.Context) error {
	if c.prod == nil {
		return errors.New("no producer")
	}
	if err := c.prod.AbortBufferedRecords(ctx); err != nil {
		return fmt.Errorf("kafka changelog of %s: abort: %w", c.what(), err)
	}
	if err := c.prod.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return fmt.Errorf("kafka changelog of %s: abort: %w", c.what(), err)
	}
	return nil
}

// ShareTransaction writes into sink's transactions from now on when sink
// is a kafka:// exactly-once sink on the same cluster, so that state and
// output commit together. It refuses while a checkpoint of its own is
// open.
func (c *changelog) ShareTransaction(sink connectors.Transactional) bool {
	t, ok := sink.(*TxSink)
	if !ok || !sameCluster(t.cfg.Conn, c.conn) {
		return false
	}
	c.txMu.Lock()
	defer c.txMu.Unlock()
	if c.inTxn.Load() || c.wrote.Load() {
		return false
	}
	c.shared = t
	return true
}

// sameCluster says whether a and b name the same brokers (in any order)
// with the same security settings.
func sameCluster(a, b Conn) bool {
	x, y := slices.Clone(a.Brokers), slices.Clone(b.Brokers)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y) && (a.TLS == nil) == (b.TLS == nil) && a.SASL == b.SASL && a.User == b.User
}

// End is the last stable offset of the partition's changelog partition:
// the end as read_committed sees it, once no other producer's transaction
// is open there (fencePrevious: the engine asks for End when it takes the
// partition over).
func (c *changelog) End(ctx context.Context, partition string) (int64, error) {
	topic, part, err := c.route(partition)
	if err != nil {
		return 0, err
	}
	if err := c.fencePrevious(ctx, topic, part); err != nil {
		return 0, err
	}
	c.txMu.RLock()
	sf := c.stage
	c.txMu.RUnlock()
	if sf != nil {
		if err := c.fenceDeadWriters(ctx, sf); err != nil {
			return 0, err
		}
	}
	return c.settledEnd(ctx, topic, part)
}

// settledEnd is the partition's last stable offset once the broker's
// account of it has caught up with the fenced transactions' ends: it
// equals the partition's end (nothing open), or the start of a
// transaction the partition still lists open (this node's own). Just
// after a fenced transaction's abort, the partition may list no open
// transaction while its last stable offset is still at the aborted one's
// start (seen once on a loaded machine): a restore to it would stop short
// of the commits after. Bounded by takeoverTimeout.
func (c *changelog) settledEnd(ctx context.Context, topic string, part int32) (int64, error) {
	where := fmt.Sprintf("kafka changelog %s/%d", topic, part)
	deadline := time.Now().Add(takeoverTimeout)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		lso, err := c.end(ctx, topic, part)
		if err != nil {
			return 0, err
		}
		settled, why, err := c.lsoSettled(ctx, topic, part, lso)
		switch {
		case err != nil && !transient(err):
			return 0, fmt.Errorf("%s: %w", where, err)
		case err != nil:
			why = err.Error() // (a passing state of the broker: again)
		}
		if settled {
			return lso, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: the last stable offset stayed at %d for %v: %s", where, lso, takeoverTimeout, why)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// lsoSettled says whether lso is the partition's end or the start of a
// transaction the partition lists open; why says what it is not.
func (c *changelog) lsoSettled(ctx context.Context, topic string, part int32, lso int64) (bool, string, error) {
	described, err := c.adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {part: {}}})
	if err != nil {
		return false, "", fmt.Errorf("describe producers: %w", err)
	}
	dp, ok := described[topic].Partitions[part]
	if !ok || dp.Err != nil {
		return false, "", fmt.Errorf("describe producers: no answer for the partition (%v)", dp.Err)
	}
	for _, p := range dp.ActiveProducers {
		if p.CurrentTxnStartOffset == lso {
			return true, "", nil
		}
	}
	ends, err := c.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false, "", fmt.Errorf("end offsets: %w", err)
	}
	o, ok := ends.Lookup(topic, part)
	if !ok || o.Err != nil {
		return false, "", fmt.Errorf("end offsets: no answer for the partition (%v)", o.Err)
	}
	if o.Offset == lso {
		return true, "", nil
	}
	return false, fmt.Sprintf("the end is %d and no open transaction starts there", o.Offset), nil
}

func (c *changelog) end(ctx context.Context, topic string, part int32) (int64, error) {
	// Just after the topic is created (or a leader moves) the broker may
	// answer NOT_LEADER_FOR_PARTITION and the like for a while, and a
	// connection that timed out while the process was paused (SIGSTOP, a
	// VM freeze) fails once: retried.
	var end int64
	err := retryTransient(ctx, fmt.Sprintf("kafka changelog %s/%d: end offset", topic, part), func(ctx context.Context) error {
		listed, err := c.adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return err
		}
		o, ok := listed.Lookup(topic, part)
		if !ok {
			return errors.New("no such partition")
		}
		end = o.Offset
		return o.Err
	})
	return end, err
}

// Restore reads the partition's changelog from offset from to its last
// stable offset as of the call with read_committed, in large fetches,
// applying data records and keeping the newest marker. A from past the
// end (the topic was recreated) reads nothing: the caller decides.
func (c *changelog) Restore(ctx context.Context, partition string, from int64, apply func(key, value []byte) error,
	progress func(done, total int64),
) (connectors.ChangelogMarker, int64, error) {
	var last connectors.ChangelogMarker
	topic, part, err := c.route(partition)
	if err != nil {
		return last, from, err
	}
	end, err := c.end(ctx, topic, part)
	if err != nil {
		return last, from, err
	}
	from = max(from, 0)
	if from >= end {
		if from == end && progress != nil {
			progress(0, 0)
		}
		return last, from, nil
	}
	cl, err := c.conn.NewClient(restoreOpts(topic, part, from)...)
	if err != nil {
		return last, from, err
	}
	defer cl.Close()
	r := &restoreRead{where: fmt.Sprintf("kafka changelog %s/%d", topic, part), from: from, next: from, end: end, apply: apply, progress: progress}
	if err := r.read(ctx, cl); err != nil {
		return last, r.next, err
	}
	if r.marker != nil {
		if err := json.Unmarshal(r.marker, &last); err != nil {
			return connectors.ChangelogMarker{}, r.next, fmt.Errorf("%s: restore: bad marker %q: %w", r.where, r.marker, err)
		}
	}
	if progress != nil {
		progress(end-from, end-from)
	}
	return last, r.next, nil
}

// restoreOpts are the options of a client that reads a changelog
// partition from offset from.
func restoreOpts(topic string, part int32, from int64) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // they carry the offset forward past aborted transactions
		// 2 MiB a fetch, twice franz-go's default: measured on the local
		// broker (BenchmarkChangelogRestore), 1-2 MiB fetches restore
		// fastest, as the next fetch overlaps applying this one, while
		// 8-64 MiB ones were up to 2x slower.
		kgo.FetchMaxPartitionBytes(2 << 20),
		kgo.FetchMaxBytes(16 << 20),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}
}

// restoreRead is one Restore's reading of a changelog partition.
type restoreRead struct {
	where           string
	from, next, end int64
	n               int    // data records applied
	marker          []byte // the newest marker read
	apply           func(key, value []byte) error
	progress        func(done, total int64)
}

// read polls cl until the reading reaches end.
func (r *restoreRead) read(ctx context.Context, cl *kgo.Client) error {
	stalled := time.Now()
	for r.next < r.end {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: restore stopped at offset %d of %d: %w", r.where, r.next, r.end, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("%s: restore at offset %d: %w", r.where, r.next, ferr)
		}
		before := r.next
		if err := r.applyFetches(fs); err != nil {
			return err
		}
		if r.next > before {
			stalled = time.Now()
		} else if time.Since(stalled) > 30*time.Second {
			// The last records before the end are never compacted away
			// (the cleaner keeps each producer's last batch and every
			// transaction marker for a while), so this is a broker that
			// does not answer.
			return fmt.Errorf("%s: restore: no record between offset %d and the end %d for 30s", r.where, r.next, r.end)
		}
	}
	return nil
}

// applyFetches applies the data records of fs below the end, keeps the
// newest marker and moves next past every record it passes.
func (r *restoreRead) applyFetches(fs kgo.Fetches) error {
	var aerr error
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		for _, rec := range fp.Records {
			if aerr != nil || rec.Offset >= r.end || rec.Offset < r.next {
				continue
			}
			r.next = rec.Offset + 1
			switch {
			case rec.Attrs.IsControl():
			case string(rec.Key) == changelogMarkerKey:
				r.marker = rec.Value
			default:
				aerr = r.applyOne(rec)
			}
		}
	})
	return aerr
}

// applyOne applies a data record, with a progress call every
// restoreProgressEvery.
func (r *restoreRead) applyOne(rec *kgo.Record) error {
	if err := r.apply(rec.Key, rec.Value); err != nil {
		return fmt.Errorf("%s: restore: apply the record at offset %d: %w", r.where, rec.Offset, err)
	}
	if r.n++; r.n%restoreProgressEvery == 0 && r.progress != nil {
		r.progress(r.next-r.from, r.end-r.from)
	}
	return nil
}

// Close aborts an open transaction of its own and disconnects.
func (c *changelog) Close() error {
	var err error
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c.txMu.Lock()
		err = c.abort(ctx, false)
		if c.prod != c.cl && c.prod != nil {
			c.prod.Close()
		}
		c.txMu.Unlock()
		c.cl.Close()
	})
	return err
}

// sinkPartitioner is franz-go's default partitioner, except that records
// to changelog topics go to the partition they name (a changelog sharing
// a TxSink's transaction writes through the sink's client), and so do
// watermark markers to stage topics (stagePartitioner).
type sinkPartitioner struct{ def, manual kgo.Partitioner }

func newSinkPartitioner() kgo.Partitioner {
	return sinkPartitioner{def: kgo.UniformBytesPartitioner(64<<10, true, true, nil), manual: kgo.ManualPartitioner()}
}

func (p sinkPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if strings.HasPrefix(topic, changelogPrefix) {
		return p.manual.ForTopic(topic)
	}
	if IsStageTopic(topic) {
		return stagePartitioner{rows: kgo.StickyKeyPartitioner(nil).ForTopic(topic)}
	}
	return p.def.ForTopic(topic)
}
