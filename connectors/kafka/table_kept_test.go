package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/lockedbuf"
	"github.com/eddy-stream/eddy/internal/testenv"
	"github.com/eddy-stream/eddy/state"
)

// keptTable opens and starts the table of uri kept in dir; the caller
// closes it (a restart is a Close and another keptTable).
func keptTable(t *testing.T, uri, dir string) connectors.KeptTable {
	t.Helper()
	l, err := connectors.OpenLookup(uri, "")
	if err != nil {
		t.Fatal(err)
	}
	tb, ok := l.(connectors.KeptTable)
	if !ok {
		t.Fatalf("%s opened a %T, want a connectors.KeptTable", uri, l)
	}
	tb.KeepIn(dir)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := tb.Start(ctx); err != nil {
		tb.Close()
		t.Fatal(err)
	}
	return tb
}

// recordsRead is how many records tb read from its topic since Start.
func recordsRead(t *testing.T, tb connectors.Table) int64 {
	t.Helper()
	r, ok := tb.(interface{ RecordsRead() int64 })
	if !ok {
		t.Fatalf("%T does not count the records it reads", tb)
	}
	return r.RecordsRead()
}

// logsTo sends slog's default logger to a buffer for the test.
func logsTo(t *testing.T) *lockedbuf.Buffer {
	var logs lockedbuf.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &logs
}

// tableWrites makes n writes over keys k0..k(n/3), every fifth a tombstone.
func tableWrites(prefix string, from, n int) ([]string, []map[string]any) {
	var keys []string
	var rows []map[string]any
	for i := from; i < from+n; i++ {
		keys = append(keys, fmt.Sprintf("%s%d", prefix, i%(n/3+1)))
		if i%5 == 4 {
			rows = append(rows, nil)
		} else {
			rows = append(rows, map[string]any{"name": fmt.Sprintf("n%d", i), "level": int64(i)})
		}
	}
	return keys, rows
}

func checkRows(t *testing.T, when string, tb connectors.Table, want tableRows) {
	t.Helper()
	got := snapshot(t, tb)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: %d rows, want %d\ngot  %v\nwant %v", when, len(got), len(want), got, want)
	}
	for k, row := range want {
		if r, found, err := tb.Get(k); err != nil || !found || !reflect.DeepEqual(r, row) {
			t.Fatalf("%s: Get(%s) = %v, %v, %v; want %v", when, k, r, found, err, row)
		}
	}
}

// TestKeptTableRestartReadsTheTail: a table kept in the state reads, at a
// restart, only the records its topic gained while it was down (counted,
// not timed), and then holds exactly the rows of the whole topic: updates
// won, tombstones deleted rows stored before the restart, a value that is
// not JSON fails its key's lookup as in memory.
func TestKeptTableRestartReadsTheTail(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := compactedTopic(t, brokers, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dir := t.TempDir()
	want := tableRows{}
	keys, rows := tableWrites("u", 0, 300)
	want.write(t, cl, topic, keys, rows)

	tb := keptTable(t, uri(brokers, topic, ""), dir)
	checkRows(t, "first start", tb, want)
	if n := recordsRead(t, tb); n != 300 {
		t.Fatalf("first start read %d records, want all 300", n)
	}
	tb.Close()

	// While it is down: 40 more writes, tombstones of stored rows among them.
	keys, rows = tableWrites("u", 300, 40)
	want.write(t, cl, topic, keys, rows)
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Key: []byte("bad"), Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tb = keptTable(t, uri(brokers, topic, ""), dir)
	defer tb.Close()
	if n := recordsRead(t, tb); n != 41 {
		t.Fatalf("the restart read %d records, want only the 41 written while it was down", n)
	}
	checkRows(t, "after the restart", tb, want)
	if _, _, err := tb.Get("bad"); err == nil || !strings.Contains(err.Error(), `the row of key "bad"`) || !strings.Contains(err.Error(), "is not a JSON object") {
		t.Fatalf("Get(bad) after the restart: %v, want it to fail naming the row", err)
	}
}

// TestKeptTableSmallCache: a table larger than its cache answers every
// key right, and updates reach keys that were cached (in a table whose
// cache holds every key, so a stale cached row would be read).
func TestKeptTableSmallCache(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := compactedTopic(t, brokers, 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := tableRows{}
	keys, rows := tableWrites("c", 0, 600)
	want.write(t, cl, topic, keys, rows)
	small := keptTable(t, uri(brokers, topic, "cache-rows=16"), t.TempDir())
	defer small.Close()
	full := keptTable(t, uri(brokers, topic, ""), t.TempDir())
	defer full.Close()
	checkRows(t, "cache of 16", small, want)
	checkRows(t, "cache of all", full, want) // every row cached
	keys, rows = tableWrites("c", 600, 90)
	want.write(t, cl, topic, keys, rows)
	for _, tb := range []connectors.Table{small, full} {
		for deadline := time.Now().Add(time.Minute); !reflect.DeepEqual(snapshot(t, tb), want); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the table did not take in the later writes within a minute")
			}
		}
	}
	checkRows(t, "cache of 16, after updates", small, want)
	checkRows(t, "cache of all, after updates of cached rows", full, want)
}

// restartAfter starts a kept table of topic in dir, closes it, lets damage
// change the directory or the topic, and starts it again: it must have
// read the whole topic again, logging why, and hold exactly want.
func restartAfter(t *testing.T, brokers []string, topic string, want func() tableRows, damage func(dir string), why string) {
	t.Helper()
	dir := t.TempDir()
	tb := keptTable(t, uri(brokers, topic, ""), dir)
	tb.Close()
	damage(dir)
	logs := logsTo(t)
	tb = keptTable(t, uri(brokers, topic, ""), dir)
	defer tb.Close()
	w := want()
	checkRows(t, "after the restart", tb, w)
	if !strings.Contains(logs.String(), "reading the table again from the topic's start") || !strings.Contains(logs.String(), why) {
		t.Fatalf("no warning that the stored table was read again because %s:\n%s", why, logs.String())
	}
}

func fillTopic(t *testing.T, brokers []string, topic string, prefix string, n int) tableRows {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := tableRows{}
	keys, rows := tableWrites(prefix, 0, n)
	want.write(t, cl, topic, keys, rows)
	return want
}

// TestKeptTableDamageIsNotUsed: each kind of stored table that can't be
// trusted is read again from the topic, with a warning saying why.
func TestKeptTableDamageIsNotUsed(t *testing.T) {
	brokers := testenv.Kafka(t)
	t.Run("bad bytes", func(t *testing.T) {
		topic := compactedTopic(t, brokers, 2)
		want := fillTopic(t, brokers, topic, "b", 200)
		restartAfter(t, brokers, topic, func() tableRows { return want }, func(dir string) {
			sst, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			if len(sst) == 0 {
				t.Fatalf("no table file in %s", dir)
			}
			b, err := os.ReadFile(sst[0])
			if err != nil {
				t.Fatal(err)
			}
			for i := 100; i < 120 && i < len(b); i++ {
				b[i] ^= 0xff
			}
			if err := os.WriteFile(sst[0], b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is damaged")
	})
	t.Run("another topic", func(t *testing.T) {
		topic := compactedTopic(t, brokers, 2)
		other := compactedTopic(t, brokers, 2)
		want := fillTopic(t, brokers, topic, "a", 90)
		fillTopic(t, brokers, other, "o", 150)
		restartAfter(t, brokers, topic, func() tableRows { return want }, func(dir string) {
			// The table of another topic put where this one's lives.
			odir := t.TempDir()
			keptTable(t, uri(brokers, other, ""), odir).Close()
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(odir, dir); err != nil {
				t.Fatal(err)
			}
		}, "not from cluster")
	})
	t.Run("topic made again", func(t *testing.T) {
		topic := compactedTopic(t, brokers, 2)
		fillTopic(t, brokers, topic, "r", 120)
		var want tableRows
		restartAfter(t, brokers, topic, func() tableRows { return want }, func(string) {
			adm := tableAdmin(t, brokers)
			if _, err := adm.DeleteTopic(t.Context(), topic); err != nil {
				t.Fatal(err)
			}
			remake(t, adm, topic)
			want = fillTopic(t, brokers, topic, "x", 30)
		}, "a topic deleted and made again")
	})
	t.Run("down longer than delete.retention.ms", func(t *testing.T) {
		topic := compactedTopic(t, brokers, 1)
		want := fillTopic(t, brokers, topic, "t", 60)
		restartAfter(t, brokers, topic, func() tableRows { return want }, func(string) {
			// Any pause is longer than 1ms: tombstones written meanwhile
			// may have been removed unread.
			ms := "1"
			adm := tableAdmin(t, brokers)
			res, err := adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "delete.retention.ms", Value: &ms}}, topic)
			if err == nil {
				_, err = res.On(topic, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			waitForTopicConfig(t, adm, topic, "delete.retention.ms", ms)
		}, "longer than the topic's delete.retention.ms")
	})
	t.Run("records deleted unread", func(t *testing.T) {
		// Kafka deletes records by request only from a topic that also
		// deletes by age.
		topic := testenv.NewTopic(t, brokers, 1)
		setPolicy(t, brokers, topic, "compact,delete")
		fillTopic(t, brokers, topic, "d", 60)
		var want tableRows
		restartAfter(t, brokers, topic, func() tableRows { return want }, func(string) {
			fillTopic(t, brokers, topic, "e", 30)
			adm := tableAdmin(t, brokers)
			// Delete everything up to the last 10 records (of "e").
			ends, err := adm.ListEndOffsets(t.Context(), topic)
			if err != nil {
				t.Fatal(err)
			}
			end, _ := ends.Lookup(topic, 0)
			var o kadm.Offsets
			o.AddOffset(topic, 0, end.Offset-10, -1)
			res, err := adm.DeleteRecords(t.Context(), o)
			if err == nil {
				err = res.Error()
			}
			if err != nil {
				t.Fatal(err)
			}
			// What the topic holds now: the last 10 writes of "e".
			keys, rows := tableWrites("e", 0, 30)
			keys, rows = keys[20:], rows[20:]
			want = tableRows{}
			for i, k := range keys {
				if rows[i] == nil {
					delete(want, k)
				} else {
					want[k] = rows[i]
				}
			}
		}, "before its log start offset")
	})
}

func setPolicy(t *testing.T, brokers []string, topic, policy string) {
	t.Helper()
	adm := tableAdmin(t, brokers)
	res, err := adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "cleanup.policy", Value: &policy}}, topic)
	if err == nil {
		_, err = res.On(topic, nil)
	}
	if err != nil {
		t.Fatalf("cleanup.policy=%s on %s: %v", policy, topic, err)
	}
	waitForTopicConfig(t, adm, topic, "cleanup.policy", policy)
}

func tableAdmin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// remake creates topic again (after its deletion, which the broker
// finishes in its own time), compacted, with 2 partitions.
func remake(t *testing.T, adm *kadm.Client, topic string) {
	t.Helper()
	compact := "compact"
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		res, err := adm.CreateTopic(t.Context(), 2, 1, map[string]*string{"cleanup.policy": &compact}, topic)
		if err == nil && res.Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not made again within a minute: %v %v", topic, err, res.Err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := testenv.WaitForLeaders(ctx, adm, topic, 2); err != nil {
		t.Fatalf("topic %s made again: %v", topic, err)
	}
}

// TestKeptTableRefusesABadStoredRow: a stored row in bytes eddy did not
// write (written through the store, so its count and digest agree) makes
// its key's lookup fail, naming the key and the directory; the other keys
// answer.
func TestKeptTableRefusesABadStoredRow(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := compactedTopic(t, brokers, 1)
	want := fillTopic(t, brokers, topic, "s", 60)
	dir := t.TempDir()
	keptTable(t, uri(brokers, topic, ""), dir).Close()
	st, err := state.OpenTable(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var bad string
	for k := range want {
		bad = k
		break
	}
	m := st.Meta()
	if err := st.Write([]state.TableChange{{Partition: 0, Next: m.Positions[0], Key: []byte(bad), Value: []byte("garbage")}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	tb := keptTable(t, uri(brokers, topic, ""), dir)
	defer tb.Close()
	_, _, err = tb.Get(bad)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the stored row of key %q is damaged", bad)) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Get(%s) of a damaged stored row: %v; want it refused naming the key and %s", bad, err, dir)
	}
	for k, row := range want {
		if k == bad {
			continue
		}
		if r, found, err := tb.Get(k); err != nil || !found || !reflect.DeepEqual(r, row) {
			t.Fatalf("Get(%s) = %v, %v, %v; want %v", k, r, found, err, row)
		}
	}
}

// waitForTopicConfig fails t unless the broker describes topic's key as
// value within a minute (testenv.WaitForTopicConfig).
func waitForTopicConfig(t *testing.T, adm *kadm.Client, topic, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := testenv.WaitForTopicConfig(ctx, adm, topic, key, value); err != nil {
		t.Fatal(err)
	}
}
