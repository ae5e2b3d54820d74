package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	info := func(version string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/eddy-stream/eddy", Version: version}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"release", info("v1.2.3"), true, "eddy v1.2.3 go1.26.8"},
		{"checkout", info("(devel)", "vcs", "git", "vcs.revision", "cd963c6bf909", "vcs.time", "2026-11-30T07:00:00Z", "vcs.modified", "false"), true,
			"eddy (devel) (git cd963c6bf909, 2026-11-30T07:00:00Z) go1.26.8"},
		{"dirty checkout", info("(devel)", "vcs", "git", "vcs.revision", "cd963c6bf909", "vcs.modified", "true"), true,
			"eddy (devel) (git cd963c6bf909+dirty) go1.26.8"},
		{"no module version", info(""), true, "eddy (devel) go1.26.8"},
		{"no build info", nil, false, "eddy (no build information: built without module support)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionText(tc.info, tc.ok); got != tc.want {
				t.Fatalf("versionText = %q, want %q", got, tc.want)
			}
		})
	}
}

// eddy --version and eddy version print the same line, from the build.
func TestVersionCommands(t *testing.T) {
	flag, stderr, err := eddy(t, "--version")
	if err != nil {
		t.Fatalf("eddy --version: %v\n%s", err, stderr)
	}
	cmd, stderr, err := eddy(t, "version")
	if err != nil {
		t.Fatalf("eddy version: %v\n%s", err, stderr)
	}
	if !regexp.MustCompile(`^eddy \S.* go1\.\d+`).MatchString(flag) || flag != cmd {
		t.Fatalf("eddy --version printed %q and eddy version %q: want the same eddy VERSION … goVERSION line", flag, cmd)
	}
}

func TestLogFormat(t *testing.T) {
	args := []string{"run", netflowScript, "--source", "gen:netflow?count=100", "--emit", "final", "-v"}
	_, stderr, err := eddy(t, append([]string{"--log-format", "json"}, args...)...)
	if err != nil {
		t.Fatalf("--log-format json: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for _, line := range lines {
		var rec struct{ Time, Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level == "" || rec.Msg == "" {
			t.Fatalf("--log-format json: a log line that is not a slog JSON object (%v): %q", err, line)
		}
	}
	if len(lines) < 2 {
		t.Fatalf("--log-format json -v logged %d lines, want the run's debug lines:\n%s", len(lines), stderr)
	}
	_, stderr, err = eddy(t, append([]string{"--log-format", "text"}, args...)...)
	if err != nil || !strings.Contains(stderr, "level=DEBUG msg=") {
		t.Fatalf("--log-format text: %v\n%s", err, stderr)
	}
}

func TestCommandLineErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string
		errContains string
	}{
		{"log format", []string{"--log-format", "xml", "gen", "netflow", "--count", "1"}, `eddy: --log-format "xml": want text or json`},
		{"run without a script", []string{"run"}, "eddy: accepts 1 arg(s), received 0\nusage: eddy run PIPELINE.lua [flags]\n(see eddy run --help)"},
		{"check without a script", []string{"check"}, "usage: eddy check PIPELINE.lua... [flags]"},
		{"query with three arguments", []string{"query", "a", "b", "c"}, "usage: eddy query PIPELINE [KEY] [flags]"},
		{"topics create without a name", []string{"topics", "create"}, "usage: eddy topics create NAME --partitions N [flags]"},
		{"version with an argument", []string{"version", "x"}, "usage: eddy version [flags]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := eddy(t, tc.args...)
			if err == nil || !strings.Contains(stderr, tc.errContains) {
				t.Fatalf("eddy %s: err=%v, want stderr containing %q:\n%s", strings.Join(tc.args, " "), err, tc.errContains, stderr)
			}
		})
	}
}

// The help texts: no flag's type taken from its text, no default printed
// twice, and every sink scheme named.
func TestHelpTexts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		contains []string
		lacks    []string
	}{
		{"profiles", []string{"run", "--help"}, []string{"--cpuprofile FILE ", "--memprofile FILE "}, []string{"go tool pprof  "}},
		{"sinks", []string{"run", "--help"}, []string{"stdout", "file:PATH", "kafka://", "mysql://", "cassandra://"}, nil},
		{"emit complete", []string{"run", "--help"}, []string{"every row with a trigger field numbering its table"}, nil},
		{"trigger interval", []string{"run", "--help"}, []string{"the longest time between triggers", "--max-files-per-trigger also triggers each time"}, []string{"how often results are emitted"}},
		{"topics brokers", []string{"topics", "list", "--help"}, []string{"(default: $EDDY_KAFKA_BROKERS, else 127.0.0.1:9092)\n"}, []string{`127.0.0.1:9092) (default`}},
		{"log format", []string{"--help"}, []string{"--log-format string"}, nil},
		{"version", []string{"--help"}, []string{"--version", "version "}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := eddy(t, tc.args...)
			if err != nil {
				t.Fatalf("eddy %s: %v\n%s", strings.Join(tc.args, " "), err, stderr)
			}
			for _, s := range tc.contains {
				if !strings.Contains(out, s) {
					t.Errorf("eddy %s lacks %q:\n%s", strings.Join(tc.args, " "), s, out)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(out, s) {
					t.Errorf("eddy %s has %q:\n%s", strings.Join(tc.args, " "), s, out)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	pipeline := func(extra string) string {
		return `return { parse = eddy.json { host = "string", bytes = "number" }, key = "host", aggregate = { total = eddy.sum("bytes") },` + extra + ` }`
	}
	good := write("good.lua", pipeline(`source = "dir:flows", sinks = { results = "stdout" }`))
	syntax := write("syntax.lua", `return { parse = `)
	field := write("field.lua", `return { parse = eddy.json { host = "string" }, key = "host", aggregate = { total = eddy.sum("bytes") } }`)
	uris := write("uris.lua", pipeline(`source = "ftp://h/x", sinks = { results = "file:out.jsonl?colour=red", dead_letter = "stderr" }`))
	trigger := write("trigger.lua", `return { parse = eddy.json { host = "string" }, key = "host", aggregate = { trigger = eddy.count() }, emit = "complete" }`)

	out, stderr, err := eddy(t, "check", good, "../../scripts/netflow_webservers.lua")
	if err != nil || stderr != "" || strings.Count(out, ": ok\n") != 2 {
		t.Fatalf("eddy check of good pipelines: err=%v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}
	out, stderr, err = eddy(t, "check", syntax, good, field, uris, trigger)
	if err == nil {
		t.Fatalf("eddy check of bad pipelines passed:\n%s%s", out, stderr)
	}
	for _, want := range []string{
		syntax + ": syntax error: syntax.lua at EOF",
		field + `: pipeline table: aggregate.total: field "bytes" is not one eddy.json passes on`,
		uris + `: source: source "ftp://h/x": unknown scheme "ftp"`,
		uris + `: sinks.results: sink "file:out.jsonl?colour=red": unknown parameter colour`,
		trigger + `: emit complete numbers each table's rows in a column "trigger"`,
		"eddy: check: 5 problems in 4 of 5 pipeline(s)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("eddy check: stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(out, good+": ok") || bytes.Contains([]byte(stderr), []byte("dead_letter")) {
		t.Errorf("eddy check: the good script or the good sink was reported:\nstdout:\n%s\nstderr:\n%s", out, stderr)
	}
}
