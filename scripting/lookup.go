package scripting

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	lua "github.com/yuin/gopher-lua"
)

// Lookup defaults.
const (
	// DefaultLookupRefresh is how old a cached table may be before a
	// lookup reads it again.
	DefaultLookupRefresh = 30 * time.Second
	// DefaultLookupWait is how long a lookup waits for an unreachable
	// table before its record fails.
	DefaultLookupWait = 2 * time.Minute
)

// lookupMissEvery rate-limits the reload a miss causes (a variable for
// tests).
var lookupMissEvery = time.Second

// LookupSpec is one entry of a pipeline's lookups table:
//
//	lookups = { users = { source = "mysql://eddy@127.0.0.1:3306/dim_users/users", key = "account_id", refresh = "30s" } }
type LookupSpec struct {
	Name, Source, Key string
	// Refresh is the oldest a cached table may be when it answers.
	Refresh time.Duration
	// Wait bounds how long one lookup retries an unreachable table.
	Wait time.Duration
}

// lookupTable is the cache of one lookup, shared by every runtime of a
// pipeline: lookup(name, key) answers from rows no older than Refresh, and
// a miss reads the table again (at most once a second) so a row added
// upstream is seen at once. While the table can't be read, lookup waits:
// an answer from a table it could not read could be wrong.
type lookupTable struct {
	spec LookupSpec
	log  *slog.Logger

	mu       sync.Mutex
	src      connectors.Lookup
	rows     map[string]map[string]any
	loaded   time.Time
	openErr  error
	lastMiss time.Time
	live     atomic.Pointer[liveTable] // lookup_table.go: set once a table started
}

// readLookups reads the pipeline table's lookups field.
func (p *Pipeline) readLookups(v lua.LValue) error {
	if v == lua.LNil {
		return nil
	}
	t, ok := v.(*lua.LTable)
	if !ok {
		return fmt.Errorf("lookups: want a table such as { users = { source = URI, key = \"account_id\" } }, got %s", v.Type())
	}
	p.lookups = map[string]*lookupTable{}
	var err error
	t.ForEach(func(k, e lua.LValue) {
		if err != nil {
			return
		}
		name, ok := k.(lua.LString)
		et, ok2 := e.(*lua.LTable)
		if !ok || !ok2 {
			err = fmt.Errorf("lookups: want name = { source = URI, key = COLUMN, refresh = \"30s\" }, got %s = %s", k, e.Type())
			return
		}
		spec := LookupSpec{Name: string(name), Source: lua.LVAsString(et.RawGetString("source")), Key: lua.LVAsString(et.RawGetString("key")),
			Refresh: DefaultLookupRefresh, Wait: DefaultLookupWait}
		et.ForEach(func(f, _ lua.LValue) {
			switch lua.LVAsString(f) {
			case "source", "key", "refresh", "wait":
			default:
				err = fmt.Errorf("lookups.%s: unknown field %s (known: key, refresh, source, wait)", name, f)
			}
		})
		if err != nil {
			return
		}
		if err = checkLookupKey(spec); err != nil {
			return
		}
		for field, d := range map[string]*time.Duration{"refresh": &spec.Refresh, "wait": &spec.Wait} {
			if s := et.RawGetString(field); s != lua.LNil {
				v, perr := time.ParseDuration(lua.LVAsString(s))
				if perr != nil || v <= 0 {
					err = fmt.Errorf("lookups.%s.%s: want a duration such as \"30s\", got %s", name, field, s)
					return
				}
				*d = v
			}
		}
		if _, perr := connectors.Parse(spec.Source); perr != nil {
			err = fmt.Errorf("lookups.%s: %w", name, perr)
			return
		}
		p.lookups[spec.Name] = &lookupTable{spec: spec, log: p.logger.With("lookup", spec.Name)}
	})
	return err
}

// SetLookupSource points the lookup name at another table (the --lookup
// flag), before any runtime uses it.
func (p *Pipeline) SetLookupSource(name, uri string) error {
	lt, ok := p.lookups[name]
	if !ok {
		return fmt.Errorf("--lookup %s: %s has no lookup of that name (lookups: %s)", name, p.Script, p.lookupNames())
	}
	if _, err := connectors.Parse(uri); err != nil {
		return fmt.Errorf("--lookup %s: %w", name, err)
	}
	lt.spec.Source = uri
	return nil
}

// lookupNames lists the lookups' names, sorted, for error messages.
func (p *Pipeline) lookupNames() string {
	names := make([]string, 0, len(p.lookups))
	for n := range p.lookups {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Lookups lists the pipeline's lookups, by name.
func (p *Pipeline) Lookups() []LookupSpec {
	out := make([]LookupSpec, 0, len(p.lookups))
	for _, lt := range p.lookups {
		out = append(out, lt.spec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// installLookup adds lookup(name, key) to a sandbox of p. Waiting for an
// unreachable table does not count against call_timeout: the record is
// not running away, it is waiting for the truth.
func installLookup(sb *sandbox, p *Pipeline) {
	sb.L.SetGlobal("lookup", sb.L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		lt, ok := p.lookups[name]
		if !ok {
			L.RaiseError("lookup: no lookup named %q in the pipeline's lookups (have: %s)", name, p.lookupNames())
		}
		kv, err := toGo(L.CheckAny(2))
		if err != nil || kv == nil {
			L.RaiseError("lookup %s: want a key (a string or number), got %s", name, L.Get(2).Type())
		}
		started := sb.started.Load()
		paused := dog.ticks.Load()
		sb.started.Store(0)
		row, found, err := lt.get(sb.goCtx, connectors.LookupKey(kv))
		if started != 0 {
			sb.started.Store(started + dog.ticks.Load() - paused)
		}
		if err != nil {
			sb.checkStop(L)
			L.RaiseError("%v", err)
		}
		if !found {
			L.Push(lua.LNil)
			return 1
		}
		sb.reserve(L, "lookup row", rowSize(row))
		L.Push(toLua(L, row))
		return 1
	}))
}

// get returns the row with key, reading the table when the cache is older
// than Refresh or, for a miss, older than a second. A table that follows
// its source (lookup_table.go) answers itself, uncached.
func (lt *lookupTable) get(ctx context.Context, key string) (map[string]any, bool, error) {
	if row, found, live, err := lt.getLive(key); live {
		return row, found, err
	}
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if _, err := lt.open(ctx, tableConfig{}); err != nil { // not started by OpenTables (eddy test): in memory
		return nil, false, err
	}
	if row, found, live, err := lt.getLive(key); live {
		return row, found, err
	}
	if lt.rows == nil || time.Since(lt.loaded) >= lt.spec.Refresh {
		if err := lt.load(ctx); err != nil {
			return nil, false, err
		}
	}
	row, ok := lt.rows[key]
	if !ok && time.Since(lt.loaded) >= lookupMissEvery && time.Since(lt.lastMiss) >= lookupMissEvery {
		lt.lastMiss = time.Now()
		if err := lt.load(ctx); err != nil {
			return nil, false, err
		}
		row, ok = lt.rows[key]
	}
	return row, ok, nil
}

// load reads the table, retrying while the source says the failure is
// transient, for at most Wait.
func (lt *lookupTable) load(ctx context.Context) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		rows, err := lt.src.Load(ctx)
		if err == nil {
			if attempt > 1 {
				lt.log.Info("lookup: the table is readable again", "attempts", attempt, "waited", time.Since(start).Round(time.Millisecond))
			}
			lt.rows, lt.loaded = rows, time.Now()
			return nil
		}
		if !lt.src.Transient(err) {
			return fmt.Errorf("lookup %s: %w", lt.spec.Name, err)
		}
		if waited := time.Since(start); waited >= lt.spec.Wait {
			return fmt.Errorf("lookup %s: the table was unreachable for %v (wait=%v): %w", lt.spec.Name, waited.Round(time.Second), lt.spec.Wait, err)
		}
		d := min(100*time.Millisecond<<min(attempt-1, 7), 10*time.Second, lt.spec.Wait-time.Since(start))
		lt.log.Warn("lookup: the table can't be read; records wait for it", "attempt", attempt, "retry_in", d.Round(time.Millisecond), "error", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("lookup %s: stopped while waiting for the table: %w", lt.spec.Name, err)
		}
	}
}

// rowSize estimates a lookup row's size in Lua.
func rowSize(row map[string]any) int64 {
	n := int64(tableBytes)
	for k, v := range row {
		n += entryBytes + int64(len(k))
		if s, ok := v.(string); ok {
			n += boxBytes + int64(len(s))
		}
	}
	return n
}
