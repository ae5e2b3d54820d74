package nexmark_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/internal/nexmark"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// kafkaSource is the --source of q on the topics named prefix+stream.
func kafkaSource(q query, brokers, prefix string) string {
	uri := func(stream string) string {
		return "kafka://" + brokers + "/" + prefix + stream + "?group=" + prefix + q.name
	}
	if len(q.sources) == 1 {
		return uri(q.sources[0])
	}
	var s []string
	for _, name := range q.sources {
		s = append(s, name+"="+uri(name))
	}
	return strings.Join(s, ",")
}

// kafkaEvents writes the first n events of gen to the topics prefix+person,
// prefix+auction and prefix+bid (four partitions each) with `eddy gen
// nexmark --topic-prefix`, and the same events to files, which it reads
// back for the references.
func kafkaEvents(t *testing.T, brokers, gen string, n int) (prefix string, e *events) {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	prefix = "eddy_test_nexmark_q_" + hex.EncodeToString(b[:]) + "_"
	for _, stream := range []string{"person", "auction", "bid"} {
		topic := prefix + stream
		eddy(t, "topics", "create", "kafka://"+brokers+"/"+topic, "--partitions", "4")
		t.Cleanup(func() { eddy(t, "topics", "delete", "kafka://"+brokers+"/"+topic) })
	}
	eddy(t, "gen", gen, "--count", fmt.Sprint(n), "--seed", "42", "--brokers", brokers, "--topic-prefix", prefix)
	return prefix, generate(t, t.TempDir(), gen, int64(n))
}

// TestQueriesOnKafka: the streams written by `eddy gen nexmark
// --topic-prefix` to topics of four partitions give each script the
// reference's rows: q11's sessions of a bidder on several partitions merge
// into one, q5's second stage sees every partition's counts, and q8's join
// meets each person with their auctions whichever partitions they are on
// (both read every partition of their topics in one process:
// docs/kafka.md, "Stages and several sources").
func TestQueriesOnKafka(t *testing.T) {
	brokers := strings.Join(testenv.Kafka(t), ",")
	prefix, e := kafkaEvents(t, brokers, "nexmark?event-rate=2000", 50000)
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			want := q.want(e)
			if len(want) == 0 {
				t.Fatalf("the reference has no rows: the test would prove nothing")
			}
			out := filepath.Join(t.TempDir(), q.name+".jsonl")
			eddy(t, "run", q.name+".lua", "--source", kafkaSource(q, brokers, prefix),
				"--changelog=false", "--sink", "file:"+out, "--until-idle", "--progress=false")
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := nexmark.Compare(want, q.got(t, got), false); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d rows equal the reference's", len(want))
		})
	}
}

// TestQueriesOnKafkaRepartitioned: the queries that re-key (joins, and
// aggregates over topics not partitioned by their key) give the
// reference's rows through a repartition topic (--repartition), as a
// cluster runs them: each key's records in one partition of the
// repartition topic, the engine reading it partition by partition. q4 and
// q5 re-key again between their stages: stage 1's rows reach stage 2's
// engine through eddy-stages.GROUP.2 by stage 2's key.
func TestQueriesOnKafkaRepartitioned(t *testing.T) {
	brokers := strings.Join(testenv.Kafka(t), ",")
	prefix, e := kafkaEvents(t, brokers, "nexmark?event-rate=2000", 50000)
	for _, q := range queries {
		if !repartitions[q.name] {
			continue
		}
		t.Run(q.name, func(t *testing.T) {
			want := q.want(e)
			if len(want) == 0 {
				t.Fatalf("the reference has no rows: the test would prove nothing")
			}
			out := filepath.Join(t.TempDir(), q.name+".jsonl")
			deleteGroupTopics(t, brokers, prefix+q.name)
			eddy(t, "run", q.name+".lua", "--source", kafkaSource(q, brokers, prefix), "--repartition",
				"--sink", "file:"+out, "--until-idle", "--progress=false")
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := nexmark.Compare(want, q.got(t, got), false); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d rows equal the reference's", len(want))
		})
	}
}

// repartitions are the queries --repartition runs: one re-key, or two
// (q4 and q5, between their stages).
var repartitions = map[string]bool{"q3": true, "q4": true, "q5": true, "q7": true, "q8": true, "q9": true, "q11": true}

// deleteGroupTopics deletes, when the test ends, the topics eddy makes for
// a run in group: the repartition and stage topics, their engines'
// changelogs and the stage writers' checkpoint markers (each named with
// ".GROUP.").
func deleteGroupTopics(t *testing.T, brokers, group string) {
	t.Cleanup(func() {
		out, err := exec.Command(eddyBin, "topics", "list", "--brokers", brokers).Output()
		if err != nil {
			t.Logf("topics list: %v", err)
			return
		}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.Contains(f[0], "."+group+".") {
				tryEddy("topics", "delete", "kafka://"+brokers+"/"+f[0])
			}
		}
	})
}
