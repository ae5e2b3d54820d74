package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/testenv"
)

func uri(brokers []string, topic, params string) string {
	u := "kafka://" + strings.Join(brokers, ",") + "/" + topic
	if params != "" {
		u += "?" + params
	}
	return u
}

// produce writes n records "v0".."v{n-1}" with keys k0.. to topic, spread
// over its partitions by key.
func produce(t *testing.T, brokers []string, topic string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// consumeAll reads topic with read_committed until it has n values or 20s
// pass.
func consumeAll(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func TestSourceReadsSeeksAndCatchesUp(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 2)
	produce(t, brokers, topic, 0, 500)
	src, err := connectors.OpenSource(uri(brokers, topic, "group="+topic+"-g&batch=100"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := connectortest.Start(t, src)
	l.WaitPartitions(t, 2, 30*time.Second)
	total := 0
	var seen []string
	for _, p := range l.Partitions() {
		res := connectortest.ReadAll(t, p, 0, 20*time.Second)
		for _, r := range res.Records() {
			seen = append(seen, string(r.Value))
			if r.Unit != "offset" || !strings.HasPrefix(r.Where, topic+"/") {
				t.Fatalf("record located as %q %q", r.Where, r.Unit)
			}
		}
		total += len(res.Records())
		last := res.Batches[len(res.Batches)-1]
		if !last.CaughtUp {
			t.Fatalf("%s: the last batch is not caught up", p.ID())
		}
		// Seek back to the middle: the second half again.
		recs := res.Records()
		mid := recs[len(recs)/2]
		if err := p.Seek([]byte(fmt.Sprintf(`{"offset":%d}`, mid.Seq))); err != nil {
			t.Fatal(err)
		}
		again := connectortest.ReadAll(t, p, 0, 20*time.Second).Records()
		if len(again) != len(recs)-len(recs)/2 || string(again[0].Value) != string(mid.Value) {
			t.Fatalf("%s: after a seek to offset %d read %d records from %q, want %d from %q", p.ID(), mid.Seq, len(again), again[0].Value, len(recs)-len(recs)/2, mid.Value)
		}
		if p.Describe(last.End) == "" {
			t.Fatal("no description")
		}
	}
	if total != 500 {
		t.Fatalf("read %d records, want 500", total)
	}
	distinct := map[string]bool{}
	for _, v := range seen {
		distinct[v] = true
	}
	if len(distinct) != 500 {
		t.Fatalf("read %d distinct records of 500: some twice, some never", len(distinct))
	}
}

// The shared source suite: reads, restarts in a new process (a new
// member of the group) and rewinds, from the start and from batch ends.
func TestSourceConformance(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 2)
	produce(t, brokers, topic, 0, 3000)
	opened := 0
	connectortest.TestSource(t, func(t *testing.T) connectors.Source {
		// A group of its own each time: the suite keeps the first source
		// reading while it opens others, which in one group would take
		// partitions from it.
		opened++
		src, err := connectors.OpenSource(uri(brokers, topic, fmt.Sprintf("group=%s-%d&batch=400", topic, opened)), nil)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}, connectortest.SourceOptions{Timeout: 30 * time.Second})
}

// The shared sink suite, for the idempotent sink and the transactional
// one (whose Flush does not commit: Close aborts, so nothing is read back
// unless Commit ran; the suite's rows are committed by a wrapper).
func TestSinkConformance(t *testing.T) {
	brokers := testenv.Kafka(t)
	for _, tc := range []struct{ name, params string }{{"idempotent", ""}, {"transactional", "exactly-once=true"}} {
		t.Run(tc.name, func(t *testing.T) {
			topic := testenv.NewTopic(t, brokers, 1)
			t.Cleanup(func() { deleteTopics(brokers, "__eddy_checkpoints.eddy."+topic) })
			connectortest.TestSink(t, func(t *testing.T) connectors.Sink {
				s, err := connectors.OpenSink(uri(brokers, topic, tc.params))
				if err != nil {
					t.Fatal(err)
				}
				if tx, ok := s.(connectors.Transactional); ok {
					return committing{tx}
				}
				return s
			}, func(t *testing.T) []connectors.Row {
				var rows []connectors.Row
				for _, r := range consumeAllIdle(t, brokers, topic) {
					rows = append(rows, decodeRow(t, r.Value))
				}
				return rows
			}, connectortest.SinkOptions{})
		})
	}
}

// committing commits at every Flush, as the engine does at a checkpoint.
type committing struct{ connectors.Transactional }

func (c committing) Flush(ctx context.Context) error {
	if err := c.Transactional.Flush(ctx); err != nil {
		return err
	}
	return c.Commit(ctx, connectors.Checkpoint{ID: 1})
}

// decodeRow reads a JSON object into a row, keeping field order.
func decodeRow(t *testing.T, v []byte) connectors.Row {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var r connectors.Row
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("value %q is not an object", v)
	}
	for d.More() {
		k, _ := d.Token()
		var val any
		if err := d.Decode(&val); err != nil {
			t.Fatalf("value %q: %v", v, err)
		}
		if n, ok := val.(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				val = i
			} else {
				val, _ = n.Float64()
			}
		}
		r.Fields = append(r.Fields, connectors.Field{Name: k.(string), Value: val})
	}
	return r
}

func TestSourceErrors(t *testing.T) {
	brokers := testenv.Kafka(t)
	tests := []struct {
		name, uri, errContains string
	}{
		{"unknown topic", uri(brokers, "eddy_no_such_topic", ""), `topic "eddy_no_such_topic" does not exist`},
		{"no broker", "kafka://127.0.0.1:1/t", "connection refused (is it running? `just kafka-up`"},
		{"tls to a plaintext broker", uri(brokers, "t", "tls=true"), "using TLS when the broker is not expecting it: is TLS misconfigured on the client or the broker? (the listener takes no TLS: drop tls=, or use the broker's TLS listener)"},
		{"sasl to a broker without", uri(brokers, "t", "sasl=scram-sha-256&user=u&password=p"), "ILLEGAL_SASL_STATE: Request is not valid given the current SASL state. (the listener takes no SASL login: drop sasl=, or use the broker's SASL listener)"},
		{"bad start", uri(brokers, "t", "start=middle"), "start="},
		{"bad topic", uri(brokers, "a b", ""), "topic name"},
		{"sasl without user", uri(brokers, "t", "sasl=scram-sha-256"), "needs user="},
		{"user without sasl", uri(brokers, "t", "user=u&password=p"), "user= and password= are a SASL login: add sasl="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := connectors.OpenSource(tc.uri, nil)
			if err == nil {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				err = src.Start(ctx, connectortest.NewListener())
				cancel()
				src.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("error %v, want one containing %q", err, tc.errContains)
			}
		})
	}
}

func TestSinkWritesKeyedJSONAndDeadLetters(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	s, err := connectors.OpenSink(uri(brokers, topic, ""))
	if err != nil {
		t.Fatal(err)
	}
	rows := []connectors.Row{
		{Key: "a", Fields: []connectors.Field{{Name: "k", Value: "a"}, {Name: "n", Value: int64(1)}}},
		{Fields: []connectors.Field{{Name: "error", Value: "parse: boom (in/0 offset 7)"}, {Name: "partition", Value: "kafka:in/0"},
			{Name: "source", Value: "in/0 offset 7"}, {Name: "record", Value: "raw line"}}},
	}
	ctx := t.Context()
	if err := s.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := consumeAll(t, brokers, topic, 2)
	if len(got) != 2 {
		t.Fatalf("read %d records", len(got))
	}
	if string(got[0].Key) != "a" || string(got[0].Value) != `{"k":"a","n":1}` {
		t.Fatalf("row as %q=%q", got[0].Key, got[0].Value)
	}
	h := map[string]string{}
	for _, x := range got[1].Headers {
		h[x.Key] = string(x.Value)
	}
	if string(got[1].Value) != "raw line" || h["kafka-topic"] != "in" || h["kafka-partition"] != "0" || h["kafka-offset"] != "7" || !strings.Contains(h["eddy-error"], "boom") {
		t.Fatalf("dead letter %q with headers %v", got[1].Value, h)
	}
}

// A transaction's rows are visible only after Commit; aborted ones never;
// Committed reads back the last commit, also from a new sink that fenced
// the first.
func TestTxSinkCommitAbortCommitted(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	group := topic + "-g"
	u := uri(brokers, topic, "exactly-once=true&transactional-id="+topic+"&source-group="+group)
	t.Cleanup(func() { deleteTopics(brokers, "__eddy_checkpoints."+topic) })
	open := func() connectors.Transactional {
		s, err := connectors.OpenSink(u)
		if err != nil {
			t.Fatal(err)
		}
		tx, ok := s.(connectors.Transactional)
		if !ok {
			t.Fatalf("%T is not transactional", s)
		}
		return tx
	}
	row := func(v string) []connectors.Row {
		return []connectors.Row{{Key: v, Fields: []connectors.Field{{Name: "v", Value: v}}}}
	}
	ctx := t.Context()
	s := open()
	if cp, err := s.Committed(ctx); err != nil || cp.ID != 0 {
		t.Fatalf("a new id committed %v, %v", cp, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Write(ctx, row("one")))
	must(s.Flush(ctx))
	must(s.Commit(ctx, connectors.Checkpoint{ID: 3, Positions: map[string]connectors.Position{"kafka:" + topic + "/0": []byte(`{"offset":10}`)}}))
	must(s.Write(ctx, row("aborted")))
	must(s.Abort(ctx))
	// The transaction committed the source group's offset with the rows.
	offs, err := admin(t, brokers).FetchOffsets(ctx, group)
	must(err)
	if o, ok := offs.Lookup(topic, 0); !ok || o.At != 10 {
		t.Fatalf("group %s has offset %+v after the commit, want 10", group, o)
	}
	must(s.Write(ctx, row("two")))
	must(s.Commit(ctx, connectors.Checkpoint{ID: 4}))
	must(s.Write(ctx, row("left open")))
	must(s.Flush(ctx))
	// A second sink with the same id fences the first and aborts what it left open.
	s2 := open()
	defer s2.Close()
	cp, err := s2.Committed(ctx)
	must(err)
	if cp.ID != 4 {
		t.Fatalf("committed %d, want 4", cp.ID)
	}
	if err := s.Commit(ctx, connectors.Checkpoint{ID: 5}); err == nil {
		t.Fatal("the fenced sink committed")
	}
	s.Close()
	must(s2.Write(ctx, row("three")))
	must(s2.Commit(ctx, connectors.Checkpoint{ID: 6}))
	var vals []string
	for _, r := range consumeAll(t, brokers, topic, 3) {
		vals = append(vals, string(r.Key))
	}
	if strings.Join(vals, ",") != "one,two,three" {
		t.Fatalf("read_committed sees %v", vals)
	}
	if cp, err := s2.Committed(ctx); err != nil || cp.ID != 6 {
		t.Fatalf("committed %v, %v; want 6", cp.ID, err)
	}
}

// A sink that can't read the end of its marker topic says so: it does not
// take the missing end for an empty topic, "no checkpoint", from which a
// restart would read its source from the group's start and write again
// what its last checkpoint had committed.
func TestTxSinkCommittedRefusesAnUnreadableMarkerTopic(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	markers := "__eddy_checkpoints." + topic
	u := uri(brokers, topic, "exactly-once=true&transactional-id="+topic+"&source-group="+topic+"-g")
	t.Cleanup(func() { deleteTopics(brokers, markers) })
	s, err := connectors.OpenSink(u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tx := s.(connectors.Transactional)
	ctx := t.Context()
	if err := tx.Commit(ctx, connectors.Checkpoint{ID: 3}); err != nil {
		t.Fatal(err)
	}
	// The marker topic gone (its partition's end unknown to the broker).
	adm := admin(t, brokers)
	if _, err := adm.DeleteTopics(ctx, markers); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		md, err := adm.Metadata(ctx, markers)
		if err == nil && md.Topics[markers].Err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still listed a minute after its deletion (%v)", markers, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cp, err := tx.Committed(short)
	if err == nil {
		t.Fatalf("committed checkpoint %d read from a deleted marker topic, want an error", cp.ID)
	}
	if !strings.Contains(err.Error(), markers) {
		t.Errorf("the error does not name %s: %v", markers, err)
	}
}

var _ = kafka.ParseConn
