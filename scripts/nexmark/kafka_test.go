package nexmark_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/internal/nexmark"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// TestQueriesOnKafka: the bids written by `eddy gen nexmark --topic-prefix`
// to a topic of four partitions give each script the reference's rows
// (q11: a bidder's sessions on several partitions merge into one). The
// queries eddy run refuses on Kafka so far (stages: q5; several sources:
// q8) must be refused with their reason; TestQueries runs them on files.
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

func TestQueriesOnKafka(t *testing.T) {
	brokers := strings.Join(testenv.Kafka(t), ",")
	const gen, n = "nexmark?stream=bid&event-rate=2000", 50000
	var b [6]byte
	rand.Read(b[:])
	prefix := "eddy_test_nexmark_q_" + hex.EncodeToString(b[:]) + "_"
	topic := prefix + "bid"
	eddy(t, "topics", "create", "kafka://"+brokers+"/"+topic, "--partitions", "4")
	t.Cleanup(func() { eddy(t, "topics", "delete", "kafka://"+brokers+"/"+topic) })
	eddy(t, "gen", gen, "--count", fmt.Sprint(n), "--seed", "42", "--brokers", brokers, "--topic-prefix", prefix)
	file := filepath.Join(t.TempDir(), "bids.json")
	eddy(t, "gen", gen, "--count", fmt.Sprint(n), "--seed", "42", "--out", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bids, err := nexmark.Read[nexmark.Bid](strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	e := &events{bids: bids}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), q.name+".jsonl")
			args := []string{"run", q.name + ".lua", "--source", kafkaSource(q, brokers, prefix),
				"--changelog=false", "--sink", "file:" + out, "--until-idle", "--progress=false"}
			if q.onKafka != "" {
				stderr, err := tryEddy(args...)
				if err == nil || !strings.Contains(stderr, q.onKafka) {
					t.Fatalf("want eddy run refused with %q: %v\n%s", q.onKafka, err, stderr)
				}
				return
			}
			eddy(t, args...)
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := nexmark.Compare(q.want(e), q.got(t, got), false); err != nil {
				t.Fatal(err)
			}
		})
	}
}
