package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runInProcess runs the eddy command tree with args in this process and
// returns its error. Flag and URI checks fail before anything runs; a run
// that is wrongly accepted ends by itself (--until-idle on an empty
// directory) or at the deadline.
func runInProcess(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := root()
	cmd.SetArgs(args)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	return cmd.ExecuteContext(ctx)
}

// Every bad flag or URI value is refused with a message naming it and the
// range it must be in, never replaced by a default (issue 12).
func TestRunRefusesBadValues(t *testing.T) {
	empty := t.TempDir()
	dir := "dir:" + empty
	tests := []struct {
		name        string
		args        []string
		errContains string
	}{
		{"trigger 0", []string{"--trigger-interval", "0"}, "--trigger-interval 0s: want a duration above 0"},
		{"trigger negative", []string{"--trigger-interval", "-1s"}, "--trigger-interval -1s: want a duration above 0"},
		{"checkpoint 0", []string{"--checkpoint-interval", "0"}, "--checkpoint-interval 0s: want a duration above 0"},
		{"checkpoint negative", []string{"--checkpoint-interval", "-5s"}, "--checkpoint-interval -5s: want a duration above 0"},
		{"checkpoint below trigger", []string{"--trigger-interval", "2s", "--checkpoint-interval", "1s"}, "--checkpoint-interval 1s is shorter than --trigger-interval 2s"},
		{"workers 0", []string{"--workers", "0"}, "--workers 0: want 1 to 1024"},
		{"workers negative", []string{"--workers", "-3"}, "--workers -3: want 1 to 1024"},
		{"shards 0", []string{"--shards", "0"}, "--shards 0: want 1 to 1024"},
		{"shards too many", []string{"--shards", "5000"}, "--shards 5000: want 1 to 1024"},
		{"max files negative", []string{"--max-files-per-trigger", "-1"}, "--max-files-per-trigger -1: want 0 (no limit) or more"},
		{"max errors below -1", []string{"--max-errors", "-5"}, "--max-errors -5: want -1 (no limit) or a count of 0 or more"},
		{"keep 0", []string{"--keep", "0"}, "--keep 0: want 1 or more"},
		{"standby negative", []string{"--standby", "-1"}, "--standby -1: want 0 or more"},
		{"cluster port", []string{"--cluster-port", "70000"}, "--cluster-port 70000: want 0 to 65535"},
		{"max record size 0", []string{"--max-record-size", "0"}, "--max-record-size 0 is outside the allowed range 1 B to 1.0 GiB"},
		{"max record size too big", []string{"--max-record-size", "2GiB"}, "--max-record-size 2GiB is outside the allowed range 1 B to 1.0 GiB"},
		{"max record size not a size", []string{"--max-record-size", "huge"}, `--max-record-size "huge" is not a size such as 16MiB`},
		{"misspelt URI option", []string{"--source", dir + "?max-file-per-trigger=1"},
			"unknown parameter max-file-per-trigger (dir: knows max-files-per-trigger, max-record-size, on-loss, poll)"},
		{"bad URI value", []string{"--source", dir + "?max-record-size=-1"}, `parameter max-record-size "-1" is not a size`},
		{"missing file", []string{"--source", "file:/nonexistent"}, "file /nonexistent does not exist (add ?wait=true to wait for it to appear"},
		{"missing dir", []string{"--source", "dir:/nonexistent"}, "directory /nonexistent does not exist"},
		{"max files on a generator", []string{"--source", "gen:netflow?count=1", "--max-files-per-trigger", "1"},
			"--max-files-per-trigger 1: a gen: source has no such setting (it is for dir:, file: and stdin sources)"},
		{"max record size on a generator", []string{"--source", "gen:netflow?count=1", "--max-record-size", "1KiB"},
			"--max-record-size 1KiB: a gen: source has no such setting"},
		{"sink option", []string{"--sink", "stdout?pretty=1"}, "unknown parameter pretty (stdout: takes no parameters)"},
		{"dead letter option", []string{"--dead-letter", "stderr?x=1"}, "unknown parameter x (stderr: takes no parameters)"},
		{"sink in a missing directory", []string{"--sink", "file:" + empty + "/missing/x.jsonl"},
			"directory " + empty + "/missing does not exist: create it first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", netflowScript, "--until-idle", "-q"}, tt.args...)
			if !strings.Contains(strings.Join(tt.args, " "), "--source") {
				args = append(args, "--source", dir)
			}
			err := runInProcess(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want an error containing %q", err, tt.errContains)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(empty, "missing")); err == nil {
		t.Fatal("a refused file sink made its directory")
	}
}

const hostile = "testdata/hostile/"

// The hostile corpus: scripts and inputs under testdata/hostile that once
// gave a wrong answer with exit 0, each with the exit status, output and
// dead letters it must give now.
func TestHostileInputs(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		fails  bool
		stdout string
		// stderr and dead must contain each of these.
		stderr, dead []string
	}{
		{name: "invalid UTF-8 and NUL in JSON strings are dead letters",
			args:   []string{hostile + "sum.lua", "--source", "dir:" + hostile + "utf8"},
			stdout: `{"dev":"a","n":3}` + "\n" + `{"dev":"b","n":4}` + "\n" + `{"dev":"café","n":8}` + "\n",
			dead: []string{`invalid UTF-8 (byte 0xff) at byte 9, inside a JSON string`, `flows.jsonl line 2`,
				`a raw control byte 0x00 at byte 9`, `flows.jsonl line 4`}},
		{name: "a line over --max-record-size is a dead letter with a preview and its size",
			args:   []string{hostile + "sum.lua", "--source", "dir:" + hostile + "long", "--max-record-size", "1KiB"},
			stdout: `{"dev":"a","n":3}` + "\n",
			dead: []string{"record of 2.9 KiB (2997 bytes) at byte 18 is longer than the maximum record size 1.0 KiB",
				"flows.jsonl line 2", `"record":"{\"dev\":\"yyyy`}},
		{name: "the same line as a URI option",
			args:   []string{hostile + "sum.lua", "--source", "dir:" + hostile + "long?max-record-size=2KiB"},
			stdout: `{"dev":"a","n":3}` + "\n",
			dead:   []string{"longer than the maximum record size 2.0 KiB"}},
		{name: "the same line on a file: source",
			args:   []string{hostile + "sum.lua", "--source", "file:" + hostile + "long/flows.jsonl", "--max-record-size", "1KiB"},
			stdout: `{"dev":"a","n":3}` + "\n",
			dead:   []string{"record of 2.9 KiB (2997 bytes) at byte 18 is longer than the maximum record size 1.0 KiB", "flows.jsonl line 2"}},
		{name: "invalid_utf8 = keep lets them in",
			args: []string{hostile + "sum_keep.lua", "--source", "dir:" + hostile + "utf8"},
			stdout: `{"dev":"a","n":3}` + "\n" + `{"dev":"b","n":4}` + "\n" + `{"dev":"b\ufffdc","n":10}` + "\n" +
				`{"dev":"café","n":8}` + "\n" + `{"dev":"x\u0000y","n":100}` + "\n"},
		{name: "every record failed", fails: true,
			args:   []string{hostile + "sum.lua", "--source", "dir:" + hostile + "allbad"},
			stderr: []string{"every record failed: all 3 records read went to the dead-letter output"}},
		{name: "a filter that fails on every record", fails: true,
			args:   []string{hostile + "all_fail.lua", "--source", "gen:netflow?count=1000"},
			stderr: []string{"every record failed: all 1000 records read went to the dead-letter output"},
			dead:   []string{"no filter today"}},
		{name: "more failures than --max-errors", fails: true,
			args:   []string{hostile + "sum.lua", "--source", "dir:" + hostile + "utf8", "--max-errors", "1"},
			stderr: []string{"more than --max-errors 1 allows"}},
		{name: "a sum of a field the parser never passes on", fails: true,
			args:   []string{hostile + "sum_nosuch.lua", "--source", "dir:" + hostile + "utf8"},
			stderr: []string{`aggregate.b: field "nosuch" is not one eddy.json passes on (it parses dev, n)`}},
		{name: "a missing input file", fails: true,
			args:   []string{hostile + "sum.lua", "--source", "file:/nonexistent"},
			stderr: []string{"file /nonexistent does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deadPath := filepath.Join(t.TempDir(), "dead.jsonl")
			args := append([]string{"run"}, tt.args...)
			args = append(args, "--until-idle", "--dead-letter", "file:"+deadPath, "-q")
			out, stderr, err := eddy(t, args...)
			if tt.fails != (err != nil) {
				t.Fatalf("exit error %v, want failing %v\n%s", err, tt.fails, stderr)
			}
			if !tt.fails && out != tt.stdout {
				t.Fatalf("stdout:\n%s\nwant:\n%s", out, tt.stdout)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Fatalf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			dead, _ := os.ReadFile(deadPath)
			for _, want := range tt.dead {
				if !strings.Contains(string(dead), want) {
					t.Fatalf("dead letters lack %q:\n%.2000s", want, dead)
				}
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
				t.Fatalf("a stack trace:\n%s", stderr)
			}
		})
	}
}

// A 200 MB line (issue 12: 1.23 GB of memory and a 200 MB dead letter) is
// a dead letter of about 1 KiB with its size, and the process stays far
// below the line's size in memory.
func TestHugeLineBoundedMemory(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.Mkdir(in, 0o755)
	f, err := os.Create(filepath.Join(in, "flows.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"dev":"a","n":1}` + "\n" + `{"dev":"`)
	chunk := bytes.Repeat([]byte("y"), 1<<20)
	for range 200 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	f.WriteString(`","n":5}` + "\n" + `{"dev":"a","n":2}` + "\n")
	f.Close()
	deadPath := filepath.Join(dir, "dead.jsonl")
	cmd := exec.Command(eddyBin, "run", hostile+"sum.lua", "--source", "dir:"+in, "--until-idle", "-q", "--dead-letter", "file:"+deadPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if stdout.String() != `{"dev":"a","n":3}`+"\n" {
		t.Fatalf("stdout: %s", stdout.String())
	}
	dead, _ := os.ReadFile(deadPath)
	if len(dead) > 2048 || !strings.Contains(string(dead), "record of 200 MiB (209715217 bytes) at byte 18 is longer than the maximum record size 16 MiB") {
		t.Fatalf("dead letter of %d bytes: %.300s", len(dead), dead)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	t.Logf("peak RSS %d MiB", rss>>20)
	if rss > 200<<20 {
		t.Fatalf("peak RSS %d MiB reading a 200 MiB line", rss>>20)
	}
}
