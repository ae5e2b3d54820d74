package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/internal/testenv"
)

// kafkaDoc is docs/kafka.md with its lines joined, so a promised text
// may wrap.
func kafkaDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/kafka.md")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\n", " ")
}

// oneError says whether stderr is one "eddy: …" line.
func oneError(stderr string) bool {
	return strings.HasPrefix(stderr, "eddy: ") && strings.Count(stderr, "\n") == 1 && strings.HasSuffix(stderr, "\n")
}

// What docs/kafka.md promises is what eddy does: its error texts, and a
// route pipeline running exactly-once.
func TestKafkaDocErrors(t *testing.T) {
	doc := kafkaDoc(t)
	promised := func(t *testing.T, text string) {
		t.Helper()
		if !strings.Contains(doc, text) {
			t.Fatalf("docs/kafka.md does not show %q", text)
		}
	}
	t.Run("unreachable broker", func(t *testing.T) {
		const hint = "connection refused (is it running? `just kafka-up` starts the local one)"
		promised(t, "kafka 127.0.0.1:9099: … dial tcp 127.0.0.1:9099: connect: "+hint)
		addr := freeAddr(t) // nothing listens there
		for _, changelog := range []string{"true", "false"} {
			_, stderr, err := eddy(t, "run", netflowScript, "--source", "kafka://"+addr+"/flows", "--changelog="+changelog)
			if err == nil || !oneError(stderr) || !strings.Contains(stderr, "kafka "+addr+": ") || !strings.Contains(stderr, "dial tcp "+addr+": connect: "+hint) {
				t.Fatalf("--changelog=%s: err=%v, stderr:\n%s", changelog, err, stderr)
			}
		}
	})
	t.Run("missing topic", func(t *testing.T) {
		missing := func(brokers, topic string) string {
			return fmt.Sprintf("kafka %s: topic %q does not exist (create it with `eddy topics create %s --partitions N --brokers %s`)", brokers, topic, topic, brokers)
		}
		promised(t, missing("127.0.0.1:9092", "flows"))
		brokers := strings.Join(testenv.Kafka(t), ",")
		topic := fmt.Sprintf("eddy-doc-missing-%d", os.Getpid())
		for _, changelog := range []string{"true", "false"} {
			_, stderr, err := eddy(t, "run", netflowScript, "--source", "kafka://"+brokers+"/"+topic, "--changelog="+changelog)
			if want := missing(brokers, topic); err == nil || !oneError(stderr) || !strings.Contains(stderr, want) {
				t.Fatalf("--changelog=%s: err=%v, stderr:\n%s\nwant:\n%s", changelog, err, stderr, want)
			}
		}
	})
	t.Run("route", func(t *testing.T) {
		promised(t, "letters and the named outputs a `route` or per-key hook writes to")
		brokers := strings.Join(testenv.Kafka(t), ",")
		web, other := testenv.NewTopic(t, testenv.Kafka(t), 1), testenv.NewTopic(t, testenv.Kafka(t), 1)
		script := filepath.Join(t.TempDir(), "split.lua")
		src := fmt.Sprintf(`return {
  parse = eddy.json { dstdevice = "string", dstport = "string|number" },
  route = function(r) if tostring(r.dstport) == "80" then return "web" end return "other" end,
  sinks = { web = "kafka://%s/%s", other = "kafka://%s/%s" },
}`, brokers, web, brokers, other)
		if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		const n = 3000
		if _, stderr, err := eddy(t, "run", script, "--source", fmt.Sprintf("gen:netflow?count=%d", n), "--exactly-once", "-q"); err != nil {
			t.Fatalf("a route pipeline with --exactly-once: %v\n%s", err, stderr)
		}
		total := 0
		for _, topic := range []string{web, other} {
			out, stderr, err := eddy(t, "consume", "kafka://"+brokers+"/"+topic, "--from-beginning", "--read-committed", "--until-idle")
			if err != nil {
				t.Fatalf("consume %s: %v\n%s", topic, err, stderr)
			}
			lines := strings.Count(out, "\n")
			if lines == 0 {
				t.Fatalf("output %s is empty", topic)
			}
			total += lines
		}
		if total != n {
			t.Fatalf("the two outputs hold %d committed records, want each of the %d read once", total, n)
		}
	})
}
