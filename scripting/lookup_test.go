package scripting

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

// fakeLookup is a table in memory that can be made unreachable.
type fakeLookup struct {
	mu    sync.Mutex
	rows  map[string]map[string]any
	down  int // the next Loads that fail
	loads int
}

var errDown = errors.New("connection refused")

func (f *fakeLookup) Load(ctx context.Context) (map[string]map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	if f.down > 0 {
		f.down--
		return nil, errDown
	}
	out := map[string]map[string]any{}
	for k, v := range f.rows {
		out[k] = v
	}
	return out, nil
}

func (f *fakeLookup) Transient(err error) bool { return errors.Is(err, errDown) }
func (f *fakeLookup) Close() error             { return nil }

func (f *fakeLookup) set(key string, row map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows[key] = row
}

var fakes sync.Map // table name → *fakeLookup

func init() {
	connectors.RegisterLookup("fakelookup", func(t connectors.Target, key string) (connectors.Lookup, error) {
		f, ok := fakes.Load(t.Path)
		if !ok {
			return nil, errors.New("no such fake table " + t.Path)
		}
		return f.(*fakeLookup), nil
	})
}

func newFake(t *testing.T, rows map[string]map[string]any) (string, *fakeLookup) {
	f := &fakeLookup{rows: rows}
	name := strings.ReplaceAll(t.Name(), "/", "_")
	fakes.Store(name, f)
	return name, f
}

// lookupScript is a pipeline whose parse looks each line up in table.
func lookupScript(table, opts string) string {
	return `return {
  lookups = { users = { source = "fakelookup:` + table + `", key = "id"` + opts + ` } },
  parse = function(line)
    local u = lookup("users", tonumber(line) or line)
    if u == nil then return { out = line .. ":none" } end
    return { out = line .. ":" .. u.device }
  end,
}`
}

// classify runs a pipeline whose parse calls lookup and returns what the
// script made of each line, or the error.
func classify(t *testing.T, table, opts string, lines ...string) []string {
	t.Helper()
	_, rt := lookupRuntime(t, table, opts)
	var out []string
	for _, l := range lines {
		_, rec, _, err := rt.Process([]byte(l))
		if err != nil {
			out = append(out, "error: "+err.Error())
			continue
		}
		v, _ := rec.Get("out")
		out = append(out, v.(string))
	}
	return out
}

func TestLookupAnswersAndSeesNewRows(t *testing.T) {
	// The miss reload is rate-limited by wall time: instead of waiting for
	// the limit to pass, the test sets it (and refresh) to an hour while it
	// must hold and to nothing once it has passed. One runtime throughout,
	// so every answer comes from the same cache.
	defer func(d time.Duration) { lookupMissEvery = d }(lookupMissEvery)
	lookupMissEvery = time.Hour
	name, f := newFake(t, map[string]map[string]any{"1": {"id": int64(1), "device": "mobile"}})
	p, rt := lookupRuntime(t, name, `, refresh = "1h"`)
	if got := lookupEach(t, rt, "1", "2"); got != "1:mobile 2:none" || f.loads != 1 {
		t.Fatalf("got %s after %d loads, want 1:mobile 2:none after 1", got, f.loads)
	}
	// A row added upstream is found by the next miss once the rate limit
	// (one reload a second) allows, without a restart.
	f.set("2", map[string]any{"id": int64(2), "device": "tablet"})
	if got := lookupEach(t, rt, "2"); got != "2:none" || f.loads != 1 {
		t.Fatalf("within the miss rate limit: got %s after %d loads, want 2:none after 1", got, f.loads)
	}
	lookupMissEvery = 0
	if got := lookupEach(t, rt, "2"); got != "2:tablet" || f.loads != 2 {
		t.Fatalf("past the miss rate limit: got %s after %d loads, want 2:tablet after 2", got, f.loads)
	}
	// A changed row is seen once the cache is older than refresh.
	f.set("1", map[string]any{"id": int64(1), "device": "desktop"})
	if got := lookupEach(t, rt, "1"); got != "1:mobile" || f.loads != 2 {
		t.Fatalf("within refresh: got %s after %d loads, want 1:mobile after 2", got, f.loads)
	}
	p.lookups["users"].spec.Refresh = 0
	if got := lookupEach(t, rt, "1"); got != "1:desktop" || f.loads != 3 {
		t.Fatalf("past refresh: got %s after %d loads, want 1:desktop after 3", got, f.loads)
	}
}

// lookupRuntime loads classify's pipeline and one runtime of it.
func lookupRuntime(t *testing.T, table, opts string) (*Pipeline, *Runtime) {
	t.Helper()
	p, err := LoadSource("users.lua", []byte(lookupScript(table, opts)))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := p.NewRuntime(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return p, rt
}

// lookupEach runs lines through rt and returns what the script made of each,
// space separated.
func lookupEach(t *testing.T, rt *Runtime, lines ...string) string {
	t.Helper()
	var out []string
	for _, l := range lines {
		_, rec, _, err := rt.Process([]byte(l))
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		v, _ := rec.Get("out")
		out = append(out, v.(string))
	}
	return strings.Join(out, " ")
}

func TestLookupWaitsForAnUnreachableTable(t *testing.T) {
	name, f := newFake(t, map[string]map[string]any{"1": {"id": int64(1), "device": "mobile"}})
	f.down = 3
	// call_timeout is 2s; the wait for the table does not count against it.
	if got := classify(t, name, `, wait = "30s"`, "1"); got[0] != "1:mobile" {
		t.Fatalf("got %s", got)
	}
	if f.loads != 4 {
		t.Fatalf("%d loads, want 3 failures and a success", f.loads)
	}
	f.down = 1000
	got := classify(t, name, `, wait = "300ms", refresh = "1ms"`, "1")
	if !strings.Contains(got[0], "lookup users: the table was unreachable for") || !strings.Contains(got[0], "connection refused") {
		t.Fatalf("got %s", got[0])
	}
}

func TestLookupSpecErrors(t *testing.T) {
	tests := []struct {
		name        string
		lookups     string
		errContains string
	}{
		{"not a table", `"x"`, "lookups: want a table"},
		{"entry not a table", `{ users = "mysql://x" }`, "lookups: want name = { source = URI"},
		{"no key", `{ users = { source = "fakelookup:x" } }`, "lookups.users: want source = URI and key"},
		{"bad refresh", `{ users = { source = "fakelookup:x", key = "id", refresh = "often" } }`, `lookups.users.refresh: want a duration`},
		{"unknown field", `{ users = { source = "fakelookup:x", key = "id", tabel = "t" } }`, "lookups.users: unknown field tabel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadSource("p.lua", []byte(`return { lookups = `+tt.lookups+` }`))
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want %q", err, tt.errContains)
			}
		})
	}
	for _, tt := range []struct{ name, lookups, call, errContains string }{
		{"unknown name", `{ users = { source = "fakelookup:x", key = "id" } }`, `lookup("people", 1)`, `no lookup named "people"`},
		{"unknown scheme", `{ users = { source = "nope:x", key = "id" } }`, `lookup("users", 1)`, `unknown scheme "nope"`},
		{"nil key", `{ users = { source = "fakelookup:x", key = "id" } }`, `lookup("users", nil)`, "want a key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadSource("p.lua", []byte(`return { lookups = `+tt.lookups+`, parse = function(l) `+tt.call+` return {} end }`))
			if err != nil {
				t.Fatal(err)
			}
			rt, err := p.NewRuntime(false)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			_, _, _, err = rt.Process([]byte("x"))
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want %q", err, tt.errContains)
			}
		})
	}
}

// A table kept in --state lives under its lookup's name, so the name must
// be a plain file name: one that could reach outside tables/ is refused.
func TestKeptTableDirRefusesAPathName(t *testing.T) {
	if dir, err := keptTableDir("/st", "users"); err != nil || dir != "/st/tables/users" {
		t.Fatalf("users: %q, %v; want /st/tables/users", dir, err)
	}
	for _, name := range []string{"", ".", "..", "../x", "a/b", `a\b`, "a\x00b"} {
		if dir, err := keptTableDir("/st", name); err == nil || !strings.Contains(err.Error(), "plain file name") {
			t.Errorf("%q: %q, %v; want it refused", name, dir, err)
		}
	}
}
