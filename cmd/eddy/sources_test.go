package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --source on a pipeline with several sources must name the one it
// overrides; a bare URI, an unknown name or Kafka topics that can't be
// read by one member of one group are refused with a message saying what
// to do.
func TestSeveralSourcesFlag(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "two.lua")
	if err := os.WriteFile(script, []byte(`return {
  sources = { a = { uri = "file:`+filepath.Join(dir, "a.txt")+`" }, b = {} },
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("x\ny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.txt"), []byte("z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ source, want string }{
		{"", "sources.b names no uri: set it in the script or with --source b=URI"},
		{"dir:x", "--source dir:x: two.lua reads several sources (a, b): say which one with --source NAME=URI"},
		{"c=dir:x", `no source named "c" (sources: a, b)`},
		{"a=kafka://127.0.0.1:9092/t?group=x,b=kafka://127.0.0.1:9092/u?group=y", "sources.b: kafka://127.0.0.1:9092/u?group=y: the kafka:// sources of a pipeline read from one cluster in one consumer group, with the same parameters"},
		{"a=kafka://127.0.0.1:9092/t?group=x,b=kafka://127.0.0.1:9092/t?group=x", "sources.b: topic t is also sources.a's"},
	} {
		args := []string{"run", script, "--until-idle"}
		if c.source != "" {
			args = append(args, "--source", c.source)
		}
		_, stderr, err := eddy(t, args...)
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("--source %q: got %v\n%s\nwant %q", c.source, err, stderr, c.want)
		}
	}
	// A union of both: every line once, tagged with its source.
	stdout, stderr, err := eddy(t, "run", script, "--until-idle", "--source", "b=file:"+filepath.Join(dir, "b.txt"))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	want := map[string]bool{`{"_source":"a","line":"x"}`: true, `{"_source":"a","line":"y"}`: true, `{"_source":"b","line":"z"}`: true}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for _, l := range lines {
		if !want[l] {
			t.Errorf("unexpected line %s", l)
		}
	}
}
