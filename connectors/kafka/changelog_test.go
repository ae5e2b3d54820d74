package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// change is one record Restore applied; del marks a tombstone.
type change struct {
	key, value string
	del        bool
}

func (c change) String() string {
	if c.del {
		return c.key + "=<deleted>"
	}
	return c.key + "=" + strconv.Quote(c.value)
}

// clAdmin is a kadm client closed with the test.
func clAdmin(t testing.TB, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// deleteTopicsAtEnd deletes topics eddy created for the test.
func deleteTopicsAtEnd(t testing.TB, adm *kadm.Client, topics ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, topics...); err != nil {
			t.Logf("delete %v: %v", topics, err)
		}
	})
}

// openChangelog opens the changelog of a source reading topic in group,
// closed (and its topic deleted) with the test.
func openChangelog(t testing.TB, brokers []string, topic, group string) connectors.Changelog {
	t.Helper()
	src, err := kafka.NewSource(kafka.SourceConfig{Conn: kafka.Conn{Brokers: brokers, Topics: []string{topic}}, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	deleteTopicsAtEnd(t, clAdmin(t, brokers), kafka.ChangelogTopic(group, topic))
	cl, err := src.Changelog("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func marker(cp uint64, off int64) connectors.ChangelogMarker {
	return connectors.ChangelogMarker{Checkpoint: cp, Position: connectors.Position(fmt.Sprintf(`{"offset":%d}`, off)), Watermark: int64(cp) * 1000, Node: "node-a"}
}

// restore reads partition from offset from and returns what it applied,
// the marker and the offset it stopped at, and the last progress call.
func restore(t *testing.T, cl connectors.Changelog, partition string, from int64) ([]change, connectors.ChangelogMarker, int64, [2]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var got []change
	var prog [2]int64
	m, next, err := cl.Restore(ctx, partition, from, func(k, v []byte) error {
		got = append(got, change{key: string(k), value: string(v), del: v == nil})
		return nil
	}, func(done, total int64) { prog = [2]int64{done, total} })
	if err != nil {
		t.Fatalf("restore %s from %d: %v", partition, from, err)
	}
	return got, m, next, prog
}

func end(t *testing.T, cl connectors.Changelog, partition string) int64 {
	t.Helper()
	e, err := cl.End(t.Context(), partition)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// uncommittedOffset waits until a record with key is in the topic's
// partition, committed or not, and returns its offset.
func uncommittedOffset(t *testing.T, brokers []string, topic string, part int32, key string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		for it := fs.RecordIter(); !it.Done(); {
			if r := it.Next(); string(r.Key) == key {
				return r.Offset
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no record %q in %s/%d after 30s (%v)", key, topic, part, fs.Errors())
		}
	}
}

func sameChanges(t *testing.T, what string, got []change, want ...change) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func sameMarker(t *testing.T, got, want connectors.ChangelogMarker) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("marker: got %s, want %s", g, w)
	}
}

func TestChangelogRoundTrip(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 2)
	cl := openChangelog(t, brokers, topic, topic+"-g")
	p0, p1 := "kafka:"+topic+"/0", "kafka:"+topic+"/1"

	// The topic: compacted, as many partitions as the source topic.
	adm := clAdmin(t, brokers)
	ctopic := kafka.ChangelogTopic(topic+"-g", topic)
	md, err := adm.Metadata(t.Context(), ctopic)
	if err != nil || len(md.Topics[ctopic].Partitions) != 2 {
		t.Fatalf("changelog topic %s: %v, %d partitions, want 2", ctopic, err, len(md.Topics[ctopic].Partitions))
	}
	rcs, err := adm.DescribeTopicConfigs(t.Context(), ctopic)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := rcs.On(ctopic, nil); err != nil || !slices.ContainsFunc(v.Configs, func(c kadm.Config) bool {
		return c.Key == "cleanup.policy" && c.Value != nil && *c.Value == "compact"
	}) {
		t.Errorf("changelog topic %s is not compacted: %v %+v", ctopic, err, v.Configs)
	}

	if e := end(t, cl, p0); e != 0 {
		t.Fatalf("end of an empty changelog: %d", e)
	}
	cl.Write(p0, []byte("a"), []byte("1"))
	cl.Write(p0, []byte("b"), []byte("2"))
	cl.Write(p1, []byte("x"), []byte("9"))
	cl.Write(p0, []byte("c"), []byte("3"))
	off1, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p0: marker(1, 100), p1: marker(1, 200)})
	if err != nil {
		t.Fatal(err)
	}
	// p0: a b c marker commit → 4 (just after the marker), end 5;
	// p1: x marker commit → 2, end 3.
	if off1[p0] != 4 || off1[p1] != 2 || len(off1) != 2 {
		t.Fatalf("commit 1 returned %v, want %s:4 %s:2", off1, p0, p1)
	}
	for p, o := range off1 {
		if e := end(t, cl, p); e != o+1 {
			t.Errorf("end of %s after commit 1: %d, Commit returned %d (want the end before the control record)", p, e, o)
		}
	}

	cl.Write(p0, []byte("a"), []byte("11"))
	cl.Write(p0, []byte("b"), nil)
	cl.Write(p0, []byte("e"), []byte{})
	off2, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p0: marker(2, 150), p1: marker(2, 200)})
	if err != nil {
		t.Fatal(err)
	}
	if e := end(t, cl, p0); off2[p0]+1 != e || e != off1[p0]+6 {
		t.Errorf("commit 2: Commit returned %v, end of %s is %d, want %d", off2, p0, e, off1[p0]+6)
	}

	got, m, next, prog := restore(t, cl, p0, 0)
	sameChanges(t, "restore of p0 from 0", got,
		change{key: "a", value: "1"}, change{key: "b", value: "2"}, change{key: "c", value: "3"},
		change{key: "a", value: "11"}, change{key: "b", del: true}, change{key: "e", value: ""})
	sameMarker(t, m, marker(2, 150))
	if next != off2[p0]+1 || prog != [2]int64{off2[p0] + 1, off2[p0] + 1} {
		t.Errorf("restore of p0 stopped at %d with progress %v, want %d", next, prog, off2[p0]+1)
	}

	// From the offset the first commit returned: only what came later.
	got, m, next, _ = restore(t, cl, p0, off1[p0])
	sameChanges(t, "restore of p0 from commit 1", got, change{key: "a", value: "11"}, change{key: "b", del: true}, change{key: "e", value: ""})
	sameMarker(t, m, marker(2, 150))
	if next != off2[p0]+1 {
		t.Errorf("incremental restore stopped at %d, want %d", next, off2[p0]+1)
	}
	got, m, _, _ = restore(t, cl, p1, 0)
	sameChanges(t, "restore of p1", got, change{key: "x", value: "9"})
	sameMarker(t, m, marker(2, 200))

	// At the end, and past it (a recreated topic): nothing read.
	for _, from := range []int64{off2[p0] + 1, off2[p0] + 10} {
		got, m, next, _ = restore(t, cl, p0, from)
		if len(got) != 0 || m.Checkpoint != 0 || next != from {
			t.Errorf("restore from %d (end %d): %v, marker %+v, stopped at %d", from, off2[p0], got, m, next)
		}
	}

	// A commit with nothing written and no markers is a no-op.
	if off, err := cl.Commit(t.Context(), nil); err != nil || len(off) != 0 || end(t, cl, p0) != off2[p0]+1 {
		t.Errorf("empty commit: %v %v, end %d", off, err, end(t, cl, p0))
	}

	// Partitions that are not the source's.
	for _, bad := range []string{"kafka:other/0", "kafka:" + topic + "/2", "file:x", "kafka:" + topic + "/x"} {
		if _, err := cl.End(t.Context(), bad); err == nil || !strings.Contains(err.Error(), strconv.Quote(bad)) {
			t.Errorf("End(%q): %v, want an error naming it", bad, err)
		}
	}
	cl.Write("kafka:other/0", []byte("k"), []byte("v"))
	if _, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p0: marker(3, 160)}); err == nil || !strings.Contains(err.Error(), `"kafka:other/0"`) {
		t.Errorf("commit after a write to an unknown partition: %v", err)
	}
	if err := cl.Abort(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{"kafka:other/1": marker(3, 1)}); err == nil {
		t.Error("commit of a marker for an unknown partition: no error")
	}
}

// A node held up between its checkpoint's marker and its commit (paused
// past its session) commits after the partition's next owner has written
// to the changelog: the next owner's records lie between the marker and
// the control record that ends the held-up transaction. Commit's offset
// must not pass them, or the held-up node, given the partition back and
// restoring from its own checkpoint plus the changelog from that offset,
// misses them (TestClusterHealsAfterAPause read keys low).
func TestChangelogCommitHeldUpWhileTheNextOwnerWrites(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	group := topic + "-g"
	cl := openChangelog(t, brokers, topic, group)
	p := "kafka:" + topic + "/0"
	next, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("next-owner-"+topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	nextOwnerWrites := func() {
		if err := next.BeginTransaction(); err != nil {
			t.Error(err)
			return
		}
		r := &kgo.Record{Topic: kafka.ChangelogTopic(group, topic), Partition: 0, Key: []byte("b"), Value: []byte("2")}
		if err := next.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Error(err)
		}
		if err := next.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
			t.Error(err)
		}
	}

	cl.Write(p, []byte("a"), []byte("1"))
	undo := kafka.HoldChangelogCommits(nextOwnerWrites)
	off, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(1, 10)})
	undo()
	if err != nil {
		t.Fatal(err)
	}
	// (Commit waits for the end to pass its own offset, which the next
	// owner's records already did: wait for its control record.)
	// a, the marker, the next owner's record and control record, then this one's
	waitStable(t, brokers, kafka.ChangelogTopic(group, topic), 5)
	got, _, _, _ := restore(t, cl, p, off[p])
	sameChanges(t, "restore from the held-up commit's offset", got, change{key: "b", value: "2"})
}

func TestChangelogAbortedCheckpointIsInvisible(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	group := topic + "-g"
	cl := openChangelog(t, brokers, topic, group)
	p := "kafka:" + topic + "/0"

	cl.Write(p, []byte("k"), []byte("1"))
	off1, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(1, 10)})
	if err != nil {
		t.Fatal(err)
	}
	cl.Write(p, []byte("k"), []byte("2"))
	cl.Write(p, []byte("gone"), []byte("x"))
	if err := cl.Abort(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, m, _, _ := restore(t, cl, p, 0)
	sameChanges(t, "after the abort", got, change{key: "k", value: "1"})
	sameMarker(t, m, marker(1, 10))

	// Another node's transaction left open (a node that died): it holds
	// the last stable offset back, and a restore reads only up to it.
	other := openChangelog(t, brokers, topic, group)
	other.Write(p, []byte("zombie"), []byte("z"))
	// Once it is on the broker, the open transaction holds the end at it.
	clogTopic := kafka.ChangelogTopic(group, topic)
	before := uncommittedOffset(t, brokers, clogTopic, 0, "zombie")
	waitStable(t, brokers, clogTopic, before)

	cl.Write(p, []byte("k"), []byte("3"))
	off3, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(3, 30)})
	if err != nil {
		t.Fatal(err)
	}
	got, m, _, _ = restore(t, cl, p, off1[p])
	sameChanges(t, "behind an open transaction", got)
	sameMarker(t, m, connectors.ChangelogMarker{})

	// End, which a node asks for when it takes the partition over, fences
	// the other producer and returns once its abort is written: the end is
	// past this node's commit's control record (off3 is just after its
	// marker) and the abort's.
	want := off3[p] + 2
	if e := end(t, cl, p); e != want {
		t.Errorf("end once the other node's transaction is fenced: %d, want %d", e, want)
	}
	got, m, next, _ := restore(t, cl, p, 0)
	sameChanges(t, "after the other node was fenced", got, change{key: "k", value: "1"}, change{key: "k", value: "3"})
	sameMarker(t, m, marker(3, 30))
	if next != want {
		t.Errorf("restore stopped at %d, want %d", next, want)
	}
	if err := other.Close(); err != nil { // nothing left to abort
		t.Fatal(err)
	}
}

// waitStable waits until partition 0 of topic's last stable offset is want.
func waitStable(t *testing.T, brokers []string, topic string, want int64) {
	t.Helper()
	adm := clAdmin(t, brokers)
	var o kadm.ListedOffset
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		listed, err := adm.ListCommittedOffsets(t.Context(), topic)
		if err == nil {
			if o, _ = listed.Lookup(topic, 0); o.Err == nil && o.Offset == want {
				return
			}
		}
	}
	t.Fatalf("the last stable offset of %s/0 is %d after 30s (%v), want %d", topic, o.Offset, o.Err, want)
}

func TestChangelogConcurrentWrites(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 3)
	cl := openChangelog(t, brokers, topic, topic+"-g")
	const writers, perWriter = 6, 2000
	for cp := uint64(1); cp <= 2; cp++ {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				p := fmt.Sprintf("kafka:%s/%d", topic, w%3)
				for i := range perWriter {
					cl.Write(p, fmt.Appendf(nil, "w%d-%d", w, i), fmt.Appendf(nil, "%d", cp))
				}
			})
		}
		wg.Wait()
		markers := map[string]connectors.ChangelogMarker{}
		for i := range 3 {
			markers[fmt.Sprintf("kafka:%s/%d", topic, i)] = marker(cp, int64(cp))
		}
		offs, err := cl.Commit(t.Context(), markers)
		if err != nil {
			t.Fatal(err)
		}
		for p, o := range offs {
			if e := end(t, cl, p); e != o+1 {
				t.Errorf("checkpoint %d: end of %s %d, Commit returned %d (want just before the control record)", cp, p, e, o)
			}
		}
	}
	for i := range 3 {
		got, m, _, _ := restore(t, cl, fmt.Sprintf("kafka:%s/%d", topic, i), 0)
		state := map[string]string{}
		for _, c := range got {
			state[c.key] = c.value
		}
		if len(got) != 2*2*perWriter || len(state) != 2*perWriter || m.Checkpoint != 2 {
			t.Errorf("partition %d: %d changes, %d keys, checkpoint %d; want %d, %d, 2", i, len(got), len(state), m.Checkpoint, 4*perWriter, 2*perWriter)
		}
		for k, v := range state {
			if v != "2" {
				t.Errorf("partition %d: %s = %s after checkpoint 2", i, k, v)
				break
			}
		}
	}
}

func TestChangelogPartitionCountMismatch(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 2)
	group := topic + "-g"
	adm := clAdmin(t, brokers)
	ctopic := kafka.ChangelogTopic(group, topic)
	deleteTopicsAtEnd(t, adm, ctopic)
	if _, err := adm.CreateTopic(t.Context(), 3, 1, nil, ctopic); err != nil {
		t.Fatal(err)
	}
	src, err := kafka.NewSource(kafka.SourceConfig{Conn: kafka.Conn{Brokers: brokers, Topics: []string{topic}}, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cl, err := src.Changelog("test")
	if err == nil {
		cl.Close()
		t.Fatal("no error for a changelog topic with 3 partitions beside a source topic with 2")
	}
	for _, want := range []string{ctopic + " has 3 partitions", "source topic " + topic + " has 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestChangelogTopicName(t *testing.T) {
	if got := kafka.ChangelogTopic("eddy.a+b", "a"); got != "eddy-changelog.eddy.a_b.a" {
		t.Errorf("ChangelogTopic: %s", got)
	}
	long := kafka.ChangelogTopic(strings.Repeat("g", 300), "t")
	if len(long) > 249 || long == kafka.ChangelogTopic(strings.Repeat("g", 301), "t") {
		t.Errorf("long names: %d characters, or not distinct", len(long))
	}
}

// The changelog inside an exactly-once sink's transaction: state and
// output are visible together or not at all.
func TestChangelogSharedTransaction(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	out := testenv.NewTopic(t, brokers, 1)
	cl := openChangelog(t, brokers, topic, topic+"-g")
	p := "kafka:" + topic + "/0"
	txnID := "eddy.test." + out
	sink, err := kafka.NewTxSink(kafka.SinkConfig{Conn: kafka.Conn{Brokers: brokers}, Topic: out, TransactionalID: txnID})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	deleteTopicsAtEnd(t, clAdmin(t, brokers), "__eddy_checkpoints."+txnID)

	sharer := cl.(connectors.ChangelogSharer)
	if !sharer.ShareTransaction(sink) {
		t.Fatal("ShareTransaction refused a TxSink on the same brokers")
	}

	row := func(v string) []connectors.Row {
		return []connectors.Row{{Key: v, Fields: []connectors.Field{{Name: "v", Value: v}}}}
	}
	// Aborted: neither the output nor the state shows.
	if err := sink.Write(t.Context(), row("lost")); err != nil {
		t.Fatal(err)
	}
	cl.Write(p, []byte("k"), []byte("lost"))
	if _, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(1, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Abort(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := sink.Abort(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, m, _, _ := restore(t, cl, p, 0)
	sameChanges(t, "after the aborted transaction", got)
	sameMarker(t, m, connectors.ChangelogMarker{})

	// Committed: both show, and the end is what Commit said.
	if err := sink.Write(t.Context(), row("kept")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 { // beside the sink's writer, as shards do
		wg.Go(func() { cl.Write(p, fmt.Appendf(nil, "k%d", i), []byte("kept")) })
	}
	wg.Wait()
	offs, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(2, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if got, m, _, _ := restore(t, cl, p, 0); len(got) != 0 || m.Checkpoint != 0 {
		t.Errorf("visible before the sink committed: %v %+v", got, m)
	}
	if err := sink.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(t.Context(), connectors.Checkpoint{ID: 2, Positions: map[string]connectors.Position{p: marker(2, 2).Position}}); err != nil {
		t.Fatal(err)
	}
	if e := end(t, cl, p); e != offs[p]+1 {
		t.Errorf("end after the sink's commit: %d, Commit returned %d (want just before the control record)", e, offs[p])
	}
	got, m, _, _ = restore(t, cl, p, 0)
	slices.SortFunc(got, func(a, b change) int { return strings.Compare(a.key, b.key) })
	sameChanges(t, "after the commit", got, change{key: "k0", value: "kept"}, change{key: "k1", value: "kept"}, change{key: "k2", value: "kept"}, change{key: "k3", value: "kept"})
	sameMarker(t, m, marker(2, 2))
	recs := consumeAll(t, brokers, out, 1)
	if len(recs) != 1 || string(recs[0].Key) != "kept" {
		t.Errorf("output: %d records, want the one row of the committed transaction", len(recs))
	}
	cp, err := sink.Committed(t.Context())
	if err != nil || cp.ID != 2 {
		t.Errorf("the sink's committed checkpoint: %+v %v", cp, err)
	}
}

// With the source in its group, each commit carries the member's
// generation and commits the markers' positions as the group's offsets.
func TestChangelogCommitsGroupOffsets(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	group := topic + "-g"
	src, err := connectors.OpenSource(uri(brokers, topic, "group="+group), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := connectortest.Start(t, src)
	l.WaitPartitions(t, 1, 30*time.Second)
	adm := clAdmin(t, brokers)
	deleteTopicsAtEnd(t, adm, kafka.ChangelogTopic(group, topic))
	cl, err := src.(connectors.ChangelogSource).Changelog("test")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p := "kafka:" + topic + "/0"
	cl.Write(p, []byte("k"), []byte("v"))
	if _, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(1, 42)}); err != nil {
		t.Fatal(err)
	}
	offs, err := adm.FetchOffsets(t.Context(), group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); !ok || o.At != 42 {
		t.Errorf("the group's offset after the commit: %+v, want 42", o)
	}
}

// BenchmarkChangelogRestore fills one changelog partition with
// EDDY_BENCH_KEYS keys (default 1,000,000) of ~60-byte values, then
// restores it, beside a plain franz-go read of the same partition:
//
//	go test -run '^$' -bench ChangelogRestore -benchtime 3x ./connectors/kafka/
func BenchmarkChangelogRestore(b *testing.B) {
	brokers := testenv.Kafka(b)
	keys := testenv.BenchSize(b, "EDDY_BENCH_KEYS", 1_000_000)
	topic := testenv.NewTopic(b, brokers, 1)
	group := topic + "-g"
	cl := openChangelog(b, brokers, topic, group)
	p := "kafka:" + topic + "/0"
	ctx := context.Background()
	t0 := time.Now()
	value := []byte(strings.Repeat("v", 50))
	for i := 0; i < keys; {
		for j := 0; j < 100_000 && i < keys; j, i = j+1, i+1 {
			cl.Write(p, fmt.Appendf(nil, "s/%s/key-%09d", topic[len(topic)-6:], i), fmt.Appendf(value[:50:50], "%010d", i))
		}
		if _, err := cl.Commit(ctx, map[string]connectors.ChangelogMarker{p: marker(uint64(i), int64(i))}); err != nil {
			b.Fatal(err)
		}
	}
	endOff, err := cl.End(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("\nfilled changelog %s with %d keys (60-byte values) in %v; end offset %d\n",
		kafka.ChangelogTopic(group, topic), keys, time.Since(t0).Round(time.Millisecond), endOff)

	ctopic := kafka.ChangelogTopic(group, topic)
	// The fastest of the iterations of each (-benchtime 3x runs three).
	base, took := time.Duration(1<<62), time.Duration(1<<62)
	for b.Loop() {
		// Baseline: a plain franz-go read_committed loop over the partition.
		start := time.Now()
		pc, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{ctopic: {0: kgo.NewOffset().AtStart()}}))
		if err != nil {
			b.Fatal(err)
		}
		n, last := 0, int64(-1)
		for last < endOff-3 { // the last data record is before the marker and the commit record
			fs := pc.PollFetches(ctx)
			if err := fs.Err(); err != nil {
				b.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) { n++; last = r.Offset })
		}
		pc.Close()
		base = min(base, time.Since(start))

		start = time.Now()
		applied := 0
		m, _, err := cl.Restore(ctx, p, 0, func(k, v []byte) error { applied++; return nil }, func(done, total int64) {})
		if err != nil {
			b.Fatal(err)
		}
		took = min(took, time.Since(start))
		if applied != keys || m.Checkpoint != uint64(keys) {
			b.Fatalf("restore applied %d of %d keys, marker %+v", applied, keys, m)
		}
		_ = n
	}
	fmt.Printf("changelog restore of one partition, %d keys (GOMAXPROCS=%d)\n", keys, runtime.GOMAXPROCS(0))
	fmt.Printf("  %-40s %12.0f keys/s (%v)\n", "plain franz-go read_committed loop", float64(keys)/base.Seconds(), base.Round(time.Millisecond))
	fmt.Printf("  %-40s %12.0f keys/s (%v)\n", "Changelog.Restore", float64(keys)/took.Seconds(), took.Round(time.Millisecond))
	b.ReportMetric(float64(keys)/took.Seconds(), "keys/s")
}

// Commits go on through a rebalance this member survives: the generation
// they carry changes under them.
func TestChangelogCommitsThroughARebalance(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 2)
	group := topic + "-g"
	other, err := connectors.OpenSource(uri(brokers, topic, "group="+group), nil)
	if err != nil {
		t.Fatal(err)
	}
	connectortest.Start(t, other)
	src, err := connectors.OpenSource(uri(brokers, topic, "group="+group), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The group's member in this process now; it gets a partition once
	// the other gives one up.
	l := connectortest.NewListener()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer src.Close()
	if err := src.Start(ctx, l); err != nil {
		t.Fatal(err)
	}
	l.WaitPartitions(t, 1, 30*time.Second)
	deleteTopicsAtEnd(t, clAdmin(t, brokers), kafka.ChangelogTopic(group, topic))
	cl, err := src.(connectors.ChangelogSource).Changelog("test")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The partition this member holds: the changelog commits only those.
	p := l.Partitions()[0].ID()
	c := startCommitting(t, cl, p)
	c.wait(1, "before the rebalance")
	start := time.Now()
	other.Close() // leaves: a rebalance gives this member both partitions
	l.WaitPartitions(t, 2, 30*time.Second)
	rebalanced := time.Now()
	// Commits go on with the new generation.
	after := c.wait(0, "")
	c.wait(after+2, "after the rebalance")
	c.stop()
	during := c.overlapping(start, rebalanced)
	if during == 0 {
		t.Fatalf("no commit was under way during the rebalance (%v to %v)", start, rebalanced)
	}
	// Each landed: the changelog ends with the last one's marker, and the
	// group's offset (committed in the same transaction, with the
	// generation) is its position.
	n := c.count()
	if _, m, _, _ := restore(t, cl, p, 0); m.Checkpoint != uint64(n) {
		t.Fatalf("the changelog's last marker is checkpoint %d, want %d", m.Checkpoint, n)
	}
	offs, err := clAdmin(t, brokers).FetchOffsets(t.Context(), group)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := strconv.Atoi(p[strings.LastIndexByte(p, '/')+1:])
	if o, ok := offs.Lookup(topic, int32(part)); !ok || o.Err != nil || o.At != int64(n) {
		t.Fatalf("the group's offset of %s: %+v (found %v), want %d", p, o, ok, n)
	}
	t.Logf("%d checkpoints committed, %d of them under way during the %v rebalance", c.count(), during, rebalanced.Sub(start).Round(time.Millisecond))
}

// committer commits checkpoints of one partition one after another until
// stopped, and keeps when each was under way.
type committer struct {
	t         *testing.T
	done      chan struct{}
	errs      chan error    // the commit that failed; closed when it stops
	committed chan struct{} // a commit completed since the last wait
	mu        sync.Mutex
	spans     [][2]time.Time
}

func startCommitting(t *testing.T, cl connectors.Changelog, p string) *committer {
	c := &committer{t: t, done: make(chan struct{}), errs: make(chan error, 1), committed: make(chan struct{}, 1)}
	go func() {
		defer close(c.errs)
		for cp := uint64(1); ; cp++ {
			select {
			case <-c.done:
				return
			default:
			}
			cl.Write(p, []byte("k"), fmt.Appendf(nil, "%d", cp))
			t0 := time.Now()
			_, err := cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(cp, int64(cp))})
			if err != nil {
				c.errs <- fmt.Errorf("checkpoint %d: %w", cp, err)
				return
			}
			c.mu.Lock()
			c.spans = append(c.spans, [2]time.Time{t0, time.Now()})
			c.mu.Unlock()
			select {
			case c.committed <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *committer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spans)
}

// wait waits until n commits have completed, and returns how many have.
func (c *committer) wait(n int, what string) int {
	c.t.Helper()
	deadline := time.After(time.Minute)
	for {
		if got := c.count(); got >= n {
			return got
		}
		select {
		case <-c.committed:
		case err, ok := <-c.errs:
			if ok {
				c.t.Fatalf("a commit %s failed: %v", what, err)
			}
			c.t.Fatalf("the commits stopped %s", what)
		case <-deadline:
			c.t.Fatalf("%d of %d commits %s after a minute", c.count(), n, what)
		}
	}
}

// stop stops the commits and fails the test if one failed.
func (c *committer) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	close(c.done)
	if err := <-c.errs; err != nil {
		c.t.Errorf("a commit failed: %v", err)
	}
}

// overlapping counts the commits under way at some time between from and to.
func (c *committer) overlapping(from, to time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.spans {
		if s[0].Before(to) && s[1].After(from) {
			n++
		}
	}
	return n
}

// A checkpoint's transaction that outlives the transaction timeout is
// aborted by the broker, which bumps the producer's epoch: the commit
// fails with ErrTxnLost (nothing of it visible), Abort readies a fresh
// producer, and the next checkpoint commits.
func TestChangelogTimedOutTransactionIsLostNotFatal(t *testing.T) {
	lc := newLostCheckpoint(t)
	// Once on the broker, the transaction is open until the broker's
	// periodic check (10s by default) aborts it past its 1s timeout.
	uncommittedOffset(t, lc.brokers, lc.topic, 0, "k")
	waitTxnState(t, lc.brokers, lc.txn, func(s string) bool { return s != "Ongoing" })
	lc.commitLostThenNext(t)
}

// The broker aborts a checkpoint's transaction (past its timeout) after
// its marker was written and before its EndTransaction: the commit is
// refused (ErrTxnLost); the client then holds no transaction, so Abort's
// EndTransaction has nothing to do, but its producer ID failed for good.
// Abort must leave a producer the next checkpoint can use.
func TestChangelogCommitRefusedAtItsEnd(t *testing.T) {
	lc := newLostCheckpoint(t)
	var once sync.Once // (the lost checkpoint's commit only, not the next's)
	undo := kafka.HoldChangelogCommits(func() {
		once.Do(func() {
			// The broker's periodic check (10s by default) aborts the
			// transaction past its 1s timeout and completes the abort.
			waitTxnState(t, lc.brokers, lc.txn, func(s string) bool { return s == "CompleteAbort" || s == "Empty" })
		})
	})
	defer undo()
	lc.commitLostThenNext(t)
}

// lostCheckpoint is a changelog whose transactions time out after a
// second, with a checkpoint's write ("k" = "lost") under way.
type lostCheckpoint struct {
	brokers    []string
	cl         connectors.Changelog
	partition  string // the source partition
	topic, txn string // the changelog topic, its transactional id
}

func newLostCheckpoint(t *testing.T) lostCheckpoint {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	group := topic + "-g"
	src, err := kafka.NewSource(kafka.SourceConfig{Conn: kafka.Conn{Brokers: brokers, Topics: []string{topic}}, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	deleteTopicsAtEnd(t, clAdmin(t, brokers), kafka.ChangelogTopic(group, topic))
	t.Cleanup(kafka.SetChangelogTxnTimeout(time.Second))
	cl, err := src.Changelog("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	lc := lostCheckpoint{brokers: brokers, cl: cl, partition: "kafka:" + topic + "/0", topic: kafka.ChangelogTopic(group, topic), txn: src.Member().Txn}
	cl.Write(lc.partition, []byte("k"), []byte("lost"))
	return lc
}

// commitLostThenNext commits the checkpoint the broker aborted (refused
// with ErrTxnLost), aborts, and checks that the next checkpoint commits
// and is all a restore reads.
func (lc lostCheckpoint) commitLostThenNext(t *testing.T) {
	t.Helper()
	p := lc.partition
	_, err := lc.cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(1, 10)})
	if !errors.Is(err, connectors.ErrTxnLost) {
		t.Fatalf("commit of a transaction the broker aborted: %v, want ErrTxnLost", err)
	}
	if err := lc.cl.Abort(t.Context()); err != nil {
		t.Fatalf("abort after a lost transaction: %v", err)
	}
	lc.cl.Write(p, []byte("k"), []byte("kept"))
	if _, err := lc.cl.Commit(t.Context(), map[string]connectors.ChangelogMarker{p: marker(2, 20)}); err != nil {
		t.Fatalf("the checkpoint after a lost one: %v", err)
	}
	got, m, _, _ := restore(t, lc.cl, p, 0)
	sameChanges(t, "after a lost transaction and a commit", got, change{key: "k", value: "kept"})
	sameMarker(t, m, marker(2, 20))
}

// waitTxnState waits (a minute at most) until the transactional id's state
// on its coordinator satisfies ok.
func waitTxnState(t *testing.T, brokers []string, txnID string, ok func(string) bool) {
	t.Helper()
	adm := clAdmin(t, brokers)
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ds, err := adm.DescribeTransactions(t.Context(), txnID)
		if err != nil {
			last = err.Error()
			continue
		}
		if d, found := ds[txnID]; found && d.Err == nil {
			if last = d.State; ok(d.State) {
				return
			}
		}
	}
	t.Fatalf("transaction %s: state %s after a minute", txnID, last)
}
