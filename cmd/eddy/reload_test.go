package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/internal/statusapi"
)

// Hot reload with the built binary: --watch and SIGHUP load a new version
// of the script; a compatible one takes over at a checkpoint, an
// incompatible or broken one is refused and the running one goes on.

// reloadSrc counts the records per key whose port is in ports; body
// replaces the aggregate, extra is added to the pipeline table.
func reloadSrc(ports, aggregate, extra string) string {
	return fmt.Sprintf(`local ports = { %s }
return {
  name = "reload_count",
  parse = eddy.json { k = "string", port = "integer" },
  filter = function(r) return ports[r.port] end,
  key = "k",
  aggregate = { %s },
  %s
}
`, ports, aggregate, extra)
}

const countAgg = `count = eddy.count()`

// reloadRun is eddy run with its input directory, results file and script.
type reloadRun struct {
	*proc
	script, in, out string
	files           int
	lines           int
	want            map[string]int64
}

func startReloadRun(t *testing.T, src string, flags ...string) *reloadRun {
	t.Helper()
	dir := t.TempDir()
	r := &reloadRun{script: filepath.Join(dir, "reload_count.lua"), in: filepath.Join(dir, "in"), out: filepath.Join(dir, "out.jsonl"), want: map[string]int64{}}
	if err := os.Mkdir(r.in, 0o755); err != nil {
		t.Fatal(err)
	}
	r.writeScript(t, src)
	args := append([]string{"run", r.script, "--source", "dir:" + r.in + "?poll=20ms", "--state", filepath.Join(dir, "state"),
		"--sink", "file:" + r.out, "--dead-letter", "file:" + filepath.Join(dir, "dead.jsonl"), "--workers", "2", "--shards", "2",
		"--trigger-interval", "50ms", "--checkpoint-interval", "1s", "--progress=false"}, flags...)
	r.proc = startEddy(t, args...)
	// (Once it says so, a SIGHUP reloads rather than stops it.)
	r.waitFor(t, `msg="(watching the script for changes|SIGHUP reloads the script)"`, 30*time.Second)
	return r
}

// writeScript replaces the script at once (a rename), as editors save.
func (r *reloadRun) writeScript(t *testing.T, src string) {
	t.Helper()
	tmp := r.script + ".new"
	if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.script); err != nil {
		t.Fatal(err)
	}
}

// feed adds a file of n records to the input and the records the filter
// of ports keeps to the expected counts.
func (r *reloadRun) feed(t *testing.T, n int, ports ...int) {
	t.Helper()
	var sb strings.Builder
	for i := r.lines; i < r.lines+n; i++ {
		k, port := fmt.Sprintf("K%d", i%5), []int{80, 443, 22}[i%3]
		fmt.Fprintf(&sb, "{\"k\":%q,\"port\":%d}\n", k, port)
		for _, p := range ports {
			if p == port {
				r.want[k]++
			}
		}
	}
	r.lines += n
	name := fmt.Sprintf("part-%03d.jsonl", r.files)
	r.files++
	tmp := filepath.Join(r.in, "."+name)
	if err := os.WriteFile(tmp, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.in, name)); err != nil {
		t.Fatal(err)
	}
}

// waitResults waits until the results file's latest row per key are the
// expected counts (update mode writes each changed key at each trigger).
func (r *reloadRun) waitResults(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := latestCounts(t, r.out)
		if maps.Equal(got, r.want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("results: got %v, want %v\n%s", got, r.want, r.stderr())
		}
		select {
		case <-r.exited:
			t.Fatalf("eddy ended; results %v, want %v\n%s", got, r.want, r.stderr())
		case <-time.After(20 * time.Millisecond): // the file has no other signal to wait on
		}
	}
}

func latestCounts(t *testing.T, path string) map[string]int64 {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string]int64{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row struct {
			K     string
			Count int64
		}
		if json.Unmarshal(sc.Bytes(), &row) == nil && row.K != "" {
			got[row.K] = row.Count
		}
	}
	return got
}

// stop ends eddy with SIGTERM and checks it stopped cleanly.
func (r *reloadRun) stop(t *testing.T) {
	t.Helper()
	at := r.signal(t, syscall.SIGTERM)
	if code := r.waitExit(t, at, stopBound); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, r.stderr())
	}
}

// --watch: a changed filter takes over; a changed aggregate, a syntax
// error and a failing inline test are refused and the running version
// goes on; each time the counts are exact.
func TestWatchReloadsTheScript(t *testing.T) {
	r := startReloadRun(t, reloadSrc("[80] = true", countAgg, ""), "--watch")
	r.feed(t, 300, 80)
	r.waitResults(t)

	r.writeScript(t, reloadSrc("[443] = true, [22] = true", countAgg, ""))
	r.waitFor(t, `msg="reloaded the script: records after checkpoint \d+ are processed by the new version" why="the file changed"`, 30*time.Second)
	r.feed(t, 300, 443, 22)
	r.waitResults(t)

	refusals := []struct{ name, src, log string }{
		{"a changed aggregate", reloadSrc("[80] = true", `count = eddy.sum("port")`, ""),
			`msg="reload refused: aggregate \\"count\\" changed from count\(\) to sum\(\\"port\\"\); the running script goes on"`},
		{"a syntax error", reloadSrc("[80] = true", countAgg, "filter2 = function(r) return end end,"),
			`msg="reload refused: .*reload_count.lua: syntax error: .*; the running script goes on"`},
		{"a failing inline test", reloadSrc("[80] = true", countAgg, `tests = { { name = "web", input = { '{"k":"a","port":80}' }, want = { { k = "a", count = 2 } } } },`),
			`msg="reload refused: reload_count.lua: inline test \\"web\\" fails: .*; the running script goes on"`},
	}
	for i, rf := range refusals {
		r.writeScript(t, rf.src)
		r.waitFor(t, rf.log, 30*time.Second)
		r.feed(t, 150, 443, 22) // still the second version's filter
		r.waitResults(t)
		if n := strings.Count(r.stderr(), "reload refused"); n != i+1 {
			t.Fatalf("after %s: %d refusals logged, want %d:\n%s", rf.name, n, i+1, r.stderr())
		}
	}
	r.stop(t)
	if n := strings.Count(r.stderr(), "reloaded the script"); n != 1 {
		t.Errorf("%d reloads logged, want 1:\n%s", n, r.stderr())
	}
}

// SIGHUP reloads without --watch (and never stops eddy); /status shows
// the version running; SIGTERM still stops it.
func TestSIGHUPReloadsTheScript(t *testing.T) {
	t.Setenv(statusapi.RuntimeDirEnv, t.TempDir())
	addr := freeAddr(t)
	r := startReloadRun(t, reloadSrc("[80] = true", countAgg, ""), "-v", "--http", addr)
	r.feed(t, 300, 80)
	r.waitResults(t)

	r.signal(t, syscall.SIGHUP)
	r.waitFor(t, `msg="reload: the script is unchanged" why=SIGHUP`, 30*time.Second)
	v2 := reloadSrc("[22] = true", countAgg, "")
	r.writeScript(t, v2)
	r.signal(t, syscall.SIGHUP)
	r.waitFor(t, `msg="reloaded the script: .*" why=SIGHUP`, 30*time.Second)
	r.feed(t, 300, 22)
	r.waitResults(t)

	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ Script actors.ScriptStatus }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256([]byte(v2))); st.Script.Hash != want || st.Script.Reloads != 1 || st.Script.Refused != 0 {
		t.Errorf("/status script: %+v, want hash %s and 1 reload", st.Script, want)
	}
	// The metrics count it too.
	m, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Body.Close()
	metrics, err := io.ReadAll(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`(?m)^eddy_script_reloads_total\{[^}]*\} 1$`, `(?m)^eddy_script_reloads_refused_total\{[^}]*\} 0$`} {
		if !regexp.MustCompile(want).Match(metrics) {
			t.Errorf("/metrics has no line matching %s:\n%s", want, metrics)
		}
	}
	r.stop(t)
}

// A writer that truncates the script and then writes it can be read in
// between: --watch acts on a version only once two reads in a row find
// it, so the empty moment is neither refused nor taken over.
func TestWatchWaitsForTheFileToSettle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settle.lua")
	if err := os.WriteFile(path, []byte(reloadSrc("[80] = true", countAgg, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := make(chan actors.Reload, 4)
	w := &watcher{path: path, log: slog.New(slog.DiscardHandler), out: out}
	check := func(content string, want int) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		w.check(context.Background(), "the file changed", false)
		if len(out) != want {
			t.Fatalf("after reading %q: %d versions handed over, want %d", content, len(out), want)
		}
	}
	next := reloadSrc("[443] = true", countAgg, "")
	check("", 0)   // caught between the truncate and the write
	check(next, 0) // read once
	check(next, 1) // read again: the new version
	if r := <-out; r.Err != nil || r.Pipeline == nil {
		t.Fatalf("the settled version was refused: %v", r.Err)
	}
	check(next, 0) // nothing new
	check("this is not lua", 0)
	check("this is not lua", 1)
	if r := <-out; r.Err == nil {
		t.Fatal("a settled syntax error was not refused")
	}
}
