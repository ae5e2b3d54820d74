package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// fedSource is one partition ("fed") whose lines a test adds as it goes;
// it ends once the test says so and every line is read.
type fedSource struct {
	mu    sync.Mutex
	lines []string
	ended bool
	more  chan struct{} // closed and replaced at each feed
	// caughtUp hears how many lines were read each time the partition
	// reports being caught up: its reader sent the batches before on to
	// the engine by then.
	caughtUp chan int
}

func newFedSource() *fedSource {
	return &fedSource{more: make(chan struct{}), caughtUp: make(chan int, 1)}
}

// waitCaughtUp waits until the partition is caught up after n lines.
func (s *fedSource) waitCaughtUp(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case got := <-s.caughtUp:
			if got == n {
				return
			}
		case <-deadline:
			t.Fatalf("the source was not caught up after %d lines within 30s", n)
		}
	}
}

func (s *fedSource) feed(lines []string, end bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, lines...)
	s.ended = s.ended || end
	close(s.more)
	s.more = make(chan struct{})
}

func (s *fedSource) Start(_ context.Context, l connectors.Listener) error {
	l.Assign(&fedPartition{s: s})
	return nil
}

func (s *fedSource) Close() error { return nil }

type fedPartition struct {
	s    *fedSource
	next int
}

func (p *fedPartition) ID() string { return "fed" }

func (p *fedPartition) Seek(pos connectors.Position) error {
	n := 0
	if len(pos) > 0 {
		var err error
		if n, err = strconv.Atoi(string(pos)); err != nil {
			return err
		}
	}
	p.next = n
	return nil
}

// Read returns the lines fed since the last read, or after a short wait
// for more an empty caught-up batch.
func (p *fedPartition) Read(ctx context.Context) (connectors.Batch, error) {
	for waited := false; ; waited = true {
		p.s.mu.Lock()
		lines, ended, more := p.s.lines, p.s.ended, p.s.more
		p.s.mu.Unlock()
		switch {
		case p.next < len(lines):
			end := min(p.next+10, len(lines))
			b := connectors.Batch{Where: "fed", Unit: "line", End: connectors.Position(strconv.Itoa(end))}
			for i := p.next; i < end; i++ {
				b.Records = append(b.Records, connectors.Record{Value: []byte(lines[i]), Seq: int64(i + 1)})
			}
			p.next = end
			return b, nil
		case ended:
			return connectors.Batch{}, connectors.ErrEndOfInput
		case waited:
			select {
			case p.s.caughtUp <- p.next:
			default: // (nobody is waiting)
			}
			return connectors.Batch{CaughtUp: true, End: connectors.Position(strconv.Itoa(p.next))}, nil
		}
		select {
		case <-more:
		case <-ctx.Done():
			return connectors.Batch{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *fedPartition) Describe(pos connectors.Position) string { return "line " + string(pos) }
func (p *fedPartition) Close() error                            { return nil }

// reloadScript counts flows and sums their bytes (once with a Lua
// aggregate, whose accumulators cross the swap through their checkpoint
// encoding) per device, for the ports PORTS.
const reloadScript = `
local ports = { PORTS }
return {
  name = "flows",
  parse = eddy.json { dev = "string", port = "integer", bytes = "integer" },
  filter = function(r) return ports[r.port] end,
  key = "dev",
  aggregate = {
    count = eddy.count(),
    bytes = eddy.sum("bytes"),
    lua_bytes = {
      init = function() return 0 end,
      add = function(acc, r) return acc + r.bytes end,
      merge = function(a, b) return a + b end,
      result = function(acc) return acc end,
    },
  },
  emit = "final",
}`

func reloadVersion(t *testing.T, ports ...int) *scripting.Pipeline {
	var set []string
	for _, p := range ports {
		set = append(set, fmt.Sprintf("[%d] = true", p))
	}
	return load(t, strings.Replace(reloadScript, "PORTS", strings.Join(set, ", "), 1))
}

// flowLines makes n flows over devices d0..d4 and ports 80, 443 and 22.
func flowLines(from, n int) []string {
	var lines []string
	ports := []int{80, 443, 22}
	for i := from; i < from+n; i++ {
		lines = append(lines, fmt.Sprintf(`{"dev":"d%d","port":%d,"bytes":%d}`, i%5, ports[i%3], i))
	}
	return lines
}

// expectedFlows computes, apart from the engine, the count and byte sum
// per device of lines whose port is in ports.
func expectedFlows(acc map[string][2]int64, lines []string, ports ...int) {
	for i, l := range lines {
		var dev string
		var port, bytes int
		fmt.Sscanf(strings.NewReplacer(`{"dev":"`, "", `","port":`, " ", `,"bytes":`, " ", "}", "").Replace(l), "%s %d %d", &dev, &port, &bytes)
		if dev == "" {
			panic("bad test line " + strconv.Itoa(i))
		}
		for _, p := range ports {
			if p == port {
				a := acc[dev]
				acc[dev] = [2]int64{a[0] + 1, a[1] + int64(bytes)}
			}
		}
	}
}

// reloadRun is a run of v1 on a fed source that a test reloads.
type reloadRun struct {
	src     *fedSource
	results *memio.Sink
	stats   *Stats
	store   *state.Store
	logs    *syncBuffer
	reloads chan Reload
	handles chan *Handle
	done    chan error
}

func startReloadRun(t *testing.T, v1 *scripting.Pipeline, changelog connectors.Changelog) *reloadRun {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := &reloadRun{src: newFedSource(), results: &memio.Sink{}, stats: &Stats{}, store: store, logs: &syncBuffer{},
		reloads: make(chan Reload), handles: make(chan *Handle, 1), done: make(chan error, 1)}
	cfg := Config{
		Pipeline: v1, Source: r.src, Store: store, Results: r.results, Shards: 2, Workers: 2, MaxErrors: -1,
		TriggerInterval: 10 * time.Millisecond, CheckpointInterval: time.Hour, Stats: r.stats, Reload: r.reloads,
		Logger: slog.New(slog.NewTextHandler(r.logs, nil)), OnReady: func(h *Handle) { r.handles <- h }, Changelog: changelog,
	}
	go func() {
		_, err := Run(context.Background(), cfg)
		r.done <- err
	}()
	return r
}

func (r *reloadRun) send(t *testing.T, rl Reload) {
	t.Helper()
	select {
	case r.reloads <- rl:
	case <-time.After(30 * time.Second):
		t.Fatal("the engine took no reload within 30s")
	}
}

// wait waits for the run to end and returns its rows by device as (count,
// bytes), checking the Lua sum against the Go one.
func (r *reloadRun) wait(t *testing.T) map[string][2]int64 {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, r.logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the run did not end within 60s:\n%s", r.logs.String())
	}
	got := map[string][2]int64{}
	for _, row := range r.results.Rows() {
		m := map[string]any{}
		for _, f := range row.Fields {
			m[f.Name] = f.Value
		}
		count, bytes, luaBytes := toInt(m["count"]), toInt(m["bytes"]), toInt(m["lua_bytes"])
		if bytes != luaBytes {
			t.Errorf("device %v: sum %d, Lua sum %d", m["dev"], bytes, luaBytes)
		}
		got[m["dev"].(string)] = [2]int64{count, bytes}
	}
	return got
}

// A reload swaps the filter at a checkpoint: the records read before it
// are counted by the old one, those after by the new one, on the same
// state. Incompatible versions and ones that failed to load are refused
// and counted, and the running version goes on.
func TestReloadSwapsTheScriptAtACheckpoint(t *testing.T) {
	v1, v2 := reloadVersion(t, 80), reloadVersion(t, 443, 22)
	r := startReloadRun(t, v1, nil)
	first, second := flowLines(0, 300), flowLines(300, 300)
	r.src.feed(first, false)
	r.src.waitCaughtUp(t, len(first))

	r.send(t, Reload{Err: errors.New("flows.lua:3: syntax error"), Why: "test"})
	r.logs.waitFor(t, `msg="reload refused: flows.lua:3: syntax error; the running script goes on"`, 30*time.Second)
	bad := load(t, strings.Replace(reloadScript, `count = eddy.count()`, `count = eddy.sum("bytes")`, 1))
	r.send(t, Reload{Pipeline: bad, Why: "test"})
	r.logs.waitFor(t, `reload refused: aggregate \"count\" changed from count() to sum(\"bytes\")`, 30*time.Second)
	r.send(t, Reload{Pipeline: v2, Why: "test"})
	r.logs.waitFor(t, "reloaded the script", 30*time.Second)
	st, err := (<-r.handles).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Script; s == nil || s.Hash != v2.Hash || s.Reloads != 1 || s.Refused != 2 || !strings.Contains(s.LastRefused, `aggregate "count"`) {
		t.Errorf("status of the script: %+v, want hash %s, 1 reload, 2 refused, the last for the aggregate", s, v2.Hash)
	}

	r.src.feed(second, true)
	got := r.wait(t)
	want := map[string][2]int64{}
	expectedFlows(want, first, 80)
	expectedFlows(want, second, 443, 22)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("results (count, bytes by device):\n got %v\nwant %v", got, want)
	}
	if n, m := r.stats.Reloads.Load(), r.stats.ReloadsRefused.Load(); n != 1 || m != 2 {
		t.Errorf("%d reloads and %d refused, want 1 and 2", n, m)
	}
}

// A reload while records stream in: the checkpoint it takes over at
// splits them exactly, those before its position counted by the old
// filter and those after by the new, whatever the old one did with them
// after the checkpoint's barrier.
// With a changelog, the partitions restore from it as they restart.
func TestReloadWhileRecordsArrive(t *testing.T) {
	tests := []struct {
		name      string
		changelog bool
	}{{"local state", false}, {"changelog", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cl connectors.Changelog
			if tc.changelog {
				cl = &memio.Changelog{}
			}
			reloadWhileRecordsArrive(t, cl)
		})
	}
}

func reloadWhileRecordsArrive(t *testing.T, cl connectors.Changelog) {
	v1, v2 := reloadVersion(t, 80), reloadVersion(t, 443, 22)
	r := startReloadRun(t, v1, cl)
	lines := flowLines(0, 3000)
	r.src.feed(lines[:100], false)
	r.src.waitCaughtUp(t, 100)
	r.src.feed(lines[100:], false) // read on while the reload waits for its checkpoint
	r.send(t, Reload{Pipeline: v2, Why: "test"})
	r.logs.waitFor(t, "reloaded the script", 30*time.Second)
	r.src.feed(nil, true)
	got := r.wait(t)

	m := regexp.MustCompile(`reloaded the script.* checkpoint=(\d+)`).FindStringSubmatch(r.logs.String())
	cps, err := r.store.List()
	if err != nil || m == nil {
		t.Fatalf("checkpoints %v (%v), log match %v", cps, err, m)
	}
	split := -1
	for _, cp := range cps {
		if strconv.FormatUint(cp.ID, 10) == m[1] {
			split, _ = strconv.Atoi(string(cp.Positions["fed"]))
		}
	}
	if split < 100 {
		t.Fatalf("checkpoint %s: no position of at least 100 lines among %v", m[1], cps)
	}
	want := map[string][2]int64{}
	expectedFlows(want, lines[:split], 80)
	expectedFlows(want, lines[split:], 443, 22)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("results split at line %d (count, bytes by device):\n got %v\nwant %v", split, got, want)
	}
	t.Logf("swapped at line %d of %d", split, len(lines))
}

// A pipeline without aggregates writes each kept record once, through a
// reload in the middle of its input: those before the checkpoint it took
// over at as the old filter keeps them, those after as the new one does,
// and none the old one kept after the checkpoint's barrier.
func TestReloadOfARecordsPipeline(t *testing.T) {
	const script = `local ports = { PORTS }
return {
  name = "web",
  parse = eddy.json { dev = "string", port = "integer", bytes = "integer" },
  filter = function(r) return ports[r.port] end,
}`
	v1 := load(t, strings.Replace(script, "PORTS", "[80] = true", 1))
	v2 := load(t, strings.Replace(script, "PORTS", "[443] = true", 1))
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	src, records, logs := newFedSource(), &memio.Sink{}, &syncBuffer{}
	reloads, done := make(chan Reload), make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), Config{Pipeline: v1, Source: src, Store: store, Records: records, Workers: 2, MaxErrors: -1,
			TriggerInterval: 10 * time.Millisecond, CheckpointInterval: time.Hour, Reload: reloads, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		done <- err
	}()
	lines := flowLines(0, 3000)
	src.feed(lines[:100], false)
	src.waitCaughtUp(t, 100)
	src.feed(lines[100:], false) // read on while the reload waits for its checkpoint
	reloads <- Reload{Pipeline: v2, Why: "test"}
	logs.waitFor(t, "reloaded the script", 30*time.Second)
	src.feed(nil, true)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the run did not end within 60s:\n%s", logs.String())
	}
	m := regexp.MustCompile(`reloaded the script.* checkpoint=(\d+)`).FindStringSubmatch(logs.String())
	cps, _ := store.List()
	split := -1
	for _, cp := range cps {
		if m != nil && strconv.FormatUint(cp.ID, 10) == m[1] {
			split, _ = strconv.Atoi(string(cp.Positions["fed"]))
		}
	}
	if split < 100 {
		t.Fatalf("no position of the reload's checkpoint (log %v, checkpoints %v)", m, cps)
	}
	var want []string
	for i, l := range lines {
		if port := []int{80, 443, 22}[i%3]; i < split && port == 80 || i >= split && port == 443 {
			want = append(want, l)
		}
	}
	var got []string
	for _, row := range records.Rows() {
		vals := map[string]any{}
		for _, f := range row.Fields {
			vals[f.Name] = f.Value
		}
		got = append(got, fmt.Sprintf(`{"dev":"%v","port":%v,"bytes":%v}`, vals["dev"], vals["port"], vals["bytes"]))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("split at line %d: %d records written, want %d (first difference below)", split, len(got), len(want))
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("record %d: got %s, want %s", i, got[i], want[i])
				break
			}
		}
	}
	t.Logf("swapped at line %d of %d", split, len(lines))
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case int:
		return int64(n)
	}
	return -1
}
