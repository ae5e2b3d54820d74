package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/internal/testenv"
)

// TestGenNexmark: `eddy gen nexmark` splits the first --count events into
// a directory per stream, each equal to that stream on stdout.
func TestGenNexmark(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, err := eddy(t, "gen", "nexmark", "--count", "1000", "--files", "2", "--seed", "3", "--out", dir); err != nil {
		t.Fatalf("gen nexmark: %v\n%s", err, stderr)
	}
	for stream, want := range map[string]int{"person": 20, "auction": 60, "bid": 920} {
		var got strings.Builder
		for _, f := range []string{"part-00000.json", "part-00001.json"} {
			b, err := os.ReadFile(filepath.Join(dir, stream, f))
			if err != nil {
				t.Fatal(err)
			}
			got.Write(b)
		}
		if n := strings.Count(got.String(), "\n"); n != want {
			t.Errorf("%s: %d lines, want %d", stream, n, want)
		}
		one, stderr, err := eddy(t, "gen", "nexmark?stream="+stream, "--count", "1000", "--seed", "3")
		if err != nil {
			t.Fatalf("gen nexmark?stream=%s: %v\n%s", stream, err, stderr)
		}
		if one != got.String() {
			t.Errorf("%s: the directory differs from the stream written alone", stream)
		}
	}
	_, stderr, err := eddy(t, "gen", "nexmark", "--count", "10")
	if err == nil || !strings.Contains(stderr, "gen nexmark writes three streams: give --out DIR/, --topic-prefix, or one stream (nexmark?stream=bid)") {
		t.Errorf("three streams to stdout: err=%v\n%s", err, stderr)
	}
	_, stderr, err = eddy(t, "gen", "netflow", "--topic-prefix", "x-")
	if err == nil || !strings.Contains(stderr, "--topic-prefix: only gen nexmark writes to Kafka") {
		t.Errorf("--topic-prefix with netflow: err=%v\n%s", err, stderr)
	}
}

// TestGenNexmarkKafka: --topic-prefix writes each stream to its topic, in
// order, the same lines as the files.
func TestGenNexmarkKafka(t *testing.T) {
	brokers := strings.Join(testenv.Kafka(t), ",")
	var b [6]byte
	rand.Read(b[:])
	prefix := "eddy_test_nexmark_" + hex.EncodeToString(b[:]) + "_"
	for _, s := range []string{"person", "auction", "bid"} {
		topic := prefix + s
		if _, stderr, err := eddy(t, "topics", "create", "kafka://"+brokers+"/"+topic, "--partitions", "1"); err != nil {
			t.Fatalf("topics create %s: %v\n%s", topic, err, stderr)
		}
		t.Cleanup(func() { eddy(t, "topics", "delete", "kafka://"+brokers+"/"+topic) })
	}
	if _, stderr, err := eddy(t, "gen", "nexmark", "--count", "2000", "--brokers", brokers, "--topic-prefix", prefix); err != nil {
		t.Fatalf("gen nexmark to Kafka: %v\n%s", err, stderr)
	}
	for _, s := range []string{"person", "auction", "bid"} {
		got, stderr, err := eddy(t, "consume", "kafka://"+brokers+"/"+prefix+s, "--from-beginning", "--until-idle")
		if err != nil {
			t.Fatalf("consume %s: %v\n%s", s, err, stderr)
		}
		want, _, err := eddy(t, "gen", "nexmark?stream="+s, "--count", "2000")
		if err != nil || got != want {
			t.Errorf("topic %s%s: %d bytes, want the %d of gen nexmark?stream=%s (err %v)", prefix, s, len(got), len(want), s, err)
		}
	}
}
