package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/lockedbuf"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// compactedTopic makes a test topic with cleanup.policy=compact.
func compactedTopic(t testing.TB, brokers []string, partitions int32) string {
	t.Helper()
	topic := testenv.NewTopic(t, brokers, partitions)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	compact := "compact"
	res, err := kadm.NewClient(cl).AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "cleanup.policy", Value: &compact}}, topic)
	if err == nil {
		_, err = res.On(topic, nil)
	}
	if err != nil {
		t.Fatalf("compact %s: %v", topic, err)
	}
	return topic
}

// tableRows is the test's own model of a table: the last value of each key,
// tombstones deleting, in the order the test produces them.
type tableRows map[string]map[string]any

// write produces rows (a nil row is a tombstone) to topic, in order, and
// applies them to the model.
func (m tableRows) write(t *testing.T, cl *kgo.Client, topic string, keys []string, rows []map[string]any) {
	t.Helper()
	for i, k := range keys {
		rec := &kgo.Record{Topic: topic, Key: []byte(k)}
		if rows[i] != nil {
			rec.Value = []byte(fmt.Sprintf(`{"name":%q,"level":%d}`, rows[i]["name"], rows[i]["level"]))
			m[k] = rows[i]
		} else {
			delete(m, k)
		}
		if err := cl.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func openTable(t *testing.T, uri string) connectors.Table {
	t.Helper()
	l, err := connectors.OpenLookup(uri, "")
	if err != nil {
		t.Fatal(err)
	}
	tb, ok := l.(connectors.Table)
	if !ok {
		t.Fatalf("%s opened a %T, want a connectors.Table", uri, l)
	}
	t.Cleanup(func() { tb.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := tb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return tb
}

func snapshot(t *testing.T, tb connectors.Table) tableRows {
	t.Helper()
	rows, err := tb.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestTableBootstrapsAndFollows: after Start the table holds exactly the
// rows written before it (updates won, tombstones deleted); rows written
// later reach it; a value that is not JSON makes its key's lookup fail.
func TestTableBootstrapsAndFollows(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := compactedTopic(t, brokers, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := tableRows{}
	var keys []string
	var rows []map[string]any
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("u%d", i%120)) // keys 0..59 written three times: updates
		if i%7 == 3 {
			rows = append(rows, nil) // tombstone
		} else {
			rows = append(rows, map[string]any{"name": fmt.Sprintf("n%d", i), "level": int64(i)})
		}
	}
	want.write(t, cl, topic, keys, rows)

	tb := openTable(t, uri(brokers, topic, ""))
	if got := snapshot(t, tb); !reflect.DeepEqual(got, want) {
		t.Fatalf("after Start: %d rows, want %d\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	if row, found, err := tb.Get("u5"); err != nil || found != (want["u5"] != nil) || !reflect.DeepEqual(row, want["u5"]) {
		t.Fatalf("Get(u5) = %v, %v, %v; want %v", row, found, err, want["u5"])
	}

	// Later writes: an update, a tombstone of a live row, a new row.
	live := ""
	for k := range want {
		live = k
		break
	}
	want.write(t, cl, topic, []string{"u0", live, "new"},
		[]map[string]any{{"name": "changed", "level": int64(-1)}, nil, {"name": "fresh", "level": int64(7)}})
	deadline := time.Now().Add(time.Minute)
	for !maps.EqualFunc(snapshot(t, tb), want, func(a, b map[string]any) bool { return reflect.DeepEqual(a, b) }) {
		if time.Now().After(deadline) {
			t.Fatalf("the table did not take in the later writes within a minute:\ngot  %v\nwant %v", snapshot(t, tb), want)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}

	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Key: []byte("bad"), Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		_, _, err := tb.Get("bad")
		if err != nil {
			if !strings.Contains(err.Error(), `the row of key "bad"`) || !strings.Contains(err.Error(), "is not a JSON object") {
				t.Fatalf("Get(bad) error %q does not say which row and why", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a value that is not JSON did not make its key's Get fail within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTableBootstrapsPastTransactionMarkers: a table written in
// transactions ends in a commit marker, which takes an offset but is no
// record; Start must still see that it reached the end.
func TestTableBootstrapsPastTransactionMarkers(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := compactedTopic(t, brokers, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(topic+"-txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"v":%d}`, i)}
		if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The commit's markers are written after EndTransaction returns: a
	// read_committed reader (the table's start among them) sees the rows
	// once the partition's last stable offset has passed them.
	adm := kadm.NewClient(cl)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		lso, err := adm.ListCommittedOffsets(t.Context(), topic)
		if o, ok := lso.Lookup(topic, 0); err == nil && ok && o.Offset >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the transaction's rows were not stable within a minute: %v %v", lso, err)
		}
	}
	tb := openTable(t, uri(brokers, topic, ""))
	if n := len(snapshot(t, tb)); n != 5 {
		t.Fatalf("%d rows after Start, want 5", n)
	}
}

func TestTableRefusals(t *testing.T) {
	brokers := testenv.Kafka(t)
	missing := fmt.Sprintf("eddy_no_such_table_%d", time.Now().UnixNano())
	l, err := connectors.OpenLookup(uri(brokers, missing, ""), "")
	if err != nil {
		t.Fatal(err)
	}
	err = l.(connectors.Table).Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("topic %q does not exist", missing)) {
		t.Fatalf("Start on a missing topic: %v; want it refused, naming the topic", err)
	}
	if _, err := connectors.OpenLookup(uri(brokers, "t", ""), "id"); err == nil || !strings.Contains(err.Error(), "keyed by the record key") {
		t.Fatalf("a key column on a kafka table: %v, want it refused", err)
	}
	if _, err := connectors.OpenLookup(uri(brokers, "a,b", ""), ""); err == nil || !strings.Contains(err.Error(), "reads one topic") {
		t.Fatalf("two topics: %v, want them refused", err)
	}
}

// TestTableWarnsWhenNotCompacted: a topic that deletes by age is read, with
// a warning that says so.
func TestTableWarnsWhenNotCompacted(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	var logs lockedbuf.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	openTable(t, uri(brokers, topic, ""))
	want := `level=WARN msg="kafka table: the topic is not compacted: Kafka deletes its rows by age`
	if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "topic="+topic+" cleanup.policy=delete") {
		t.Fatalf("no warning %s in the logs:\n%s", want, logs.String())
	}
}

// TestTableBootstrapHasATimeout: the wait for the table's end at start is
// bounded by bootstrap-timeout, and fails naming it rather than waiting
// for ever (a compacted topic whose last records were removed could
// otherwise keep the run from starting); a bad value is refused.
func TestTableBootstrapHasATimeout(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := compactedTopic(t, brokers, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tableRows{}.write(t, cl, topic, []string{"k"}, []map[string]any{{"name": "a", "level": 1}})
	l, err := connectors.OpenLookup(uri(brokers, topic, "bootstrap-timeout=1ns"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = l.(connectors.Table).Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not read to its end within bootstrap-timeout=1ns") {
		t.Fatalf("Start with bootstrap-timeout=1ns: %v, want it to fail naming the timeout", err)
	}
	if _, err := connectors.OpenLookup(uri(brokers, topic, "bootstrap-timeout=soon"), ""); err == nil || !strings.Contains(err.Error(), "bootstrap-timeout") {
		t.Fatalf("bootstrap-timeout=soon: %v, want it refused naming the parameter", err)
	}
}
