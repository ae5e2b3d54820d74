package kafka

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
)

// Watermarks across a stage topic (eddy-stages.GROUP.N), so that the
// stage reading it may have windows of its own and feed a stage after it
// (docs/cluster.md, "Stages and joins on a cluster").
//
// Each stream of a stage topic is a partition of the stage before (its
// engine's partition id, kafka:TOPIC/N): its rows go out from whichever
// node holds that partition, in the transactions of that node's
// changelog. At each checkpoint the writing node adds to the transaction,
// after the rows, a marker per partition it holds to every partition of
// the stage topic: the watermark up to which that partition's windows
// have all been emitted (connectors.WatermarkMarker). Each row still to
// come from the partition belongs to a window ending after it.
//
// A reading partition's event time is the minimum over all the upstream
// partitions (the source's streams=): one that has not marked holds it
// back. A stream is a partition, not a node, so a node that dies holds
// nothing back for long: its partitions' next owners, restored from their
// last checkpoint, go on marking them. The rows carry no sequence: the
// transactions alone keep each once.

// IsStageTopic says whether topic carries a stage's rows to the next
// (StageTopic).
func IsStageTopic(topic string) bool { return strings.HasPrefix(topic, stagePrefix) }

var _ connectors.WatermarkMarker = (*TxSink)(nil)

// CarriesWatermarks says whether the sink writes a stage topic, whose
// reader takes watermark markers.
func (t *TxSink) CarriesWatermarks() bool { return IsStageTopic(t.cfg.Topic) }

// MarkWatermarks writes, in the open transaction (opening one), a marker
// of each upstream partition's watermark to every partition of the
// sink's stage topic.
func (t *TxSink) MarkWatermarks(ctx context.Context, marks map[string]int64) error {
	if !IsStageTopic(t.cfg.Topic) {
		return fmt.Errorf("kafka sink %s: watermark markers go to stage topics only (an eddy bug: please report it)", t.cfg.Topic)
	}
	recs := make([]*kgo.Record, 0, len(marks)*int(t.cfg.Partitions))
	for from, at := range marks {
		for p := range t.cfg.Partitions {
			recs = append(recs, &kgo.Record{Topic: t.cfg.Topic, Partition: p, Headers: []kgo.RecordHeader{
				{Key: headerFrom, Value: []byte(from)}, {Key: headerMark, Value: []byte(strconv.FormatInt(at, 10))}}})
		}
	}
	return t.produceInTxn(ctx, t.promise, nil, recs...)
}

// stagePartitioner sends a stage topic's rows where the default
// partitioner sends keyed records (by the key's murmur2, as Kafka's own
// clients: the same partition for a key on every node and version) and
// its markers to the partition each names.
type stagePartitioner struct{ rows kgo.TopicPartitioner }

// OnNewBatch lets an unkeyed row (a stage row without the next key's
// columns, a dead letter there) move on to another partition.
func (p stagePartitioner) OnNewBatch() {
	if nb, ok := p.rows.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}

func (p stagePartitioner) RequiresConsistency(r *kgo.Record) bool {
	return isMarker(r) || p.rows.RequiresConsistency(r)
}

func (p stagePartitioner) Partition(r *kgo.Record, n int) int {
	if isMarker(r) {
		return int(r.Partition)
	}
	return p.rows.Partition(r, n)
}

func isMarker(r *kgo.Record) bool {
	_, ok := header(r, headerMark)
	return ok
}

// takeStage is take for a stage topic: its rows are plain records (of
// the stream stageRows), its markers go in Marks; s.mu is held.
func (p *partition) takeStage() (connectors.Batch, bool) {
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
		taken++
		p.pos = r.Offset + 1
		v, ok := header(r, headerMark)
		if !ok {
			b.Records = append(b.Records, connectors.Record{Key: r.Key, Value: r.Value, Time: r.Timestamp, Seq: r.Offset})
			b.Stream = stageRows
			continue
		}
		from, _ := header(r, headerFrom)
		at, err := strconv.ParseInt(v, 10, 64)
		if err != nil || from == "" {
			p.failed = fmt.Errorf("stage topic %s partition %d offset %d: bad marker (from %q, at %q)", r.Topic, r.Partition, r.Offset, from, v)
			return connectors.Batch{}, false
		}
		if b.Marks == nil {
			b.Marks = map[string]int64{}
		}
		if old, ok := b.Marks[from]; !ok || at > old {
			b.Marks[from] = at
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
		return connectors.Batch{}, false // control records only
	}
	p.returned = true
	return b, true
}

// stageRows is the stream a stage topic's rows are read as: not one of
// the partition's upstreams, so rows never move its event time; the
// markers alone do (a row's window may end well after others still to
// come from its partition).
const stageRows = "rows"
