package scripting

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
)

// fakeTable is a connectors.Table in memory.
type fakeTable struct {
	mu       sync.Mutex
	rows     map[string]map[string]any
	bad      map[string]error
	starts   int
	startErr error
}

var _ connectors.Table = (*fakeTable)(nil)

func (f *fakeTable) Start(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	return f.startErr
}

func (f *fakeTable) Get(key string) (map[string]any, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.bad[key]; err != nil {
		return nil, false, err
	}
	row, ok := f.rows[key]
	return row, ok, nil
}

func (f *fakeTable) set(key string, row map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if row == nil {
		delete(f.rows, key)
		return
	}
	f.rows[key] = row
}

func (f *fakeTable) Load(context.Context) (map[string]map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.rows), nil
}
func (f *fakeTable) Transient(error) bool { return false }
func (f *fakeTable) Close() error         { return nil }

var fakeTables sync.Map // name → *fakeTable

func init() {
	connectors.RegisterLookup("faketable", func(t connectors.Target, key string) (connectors.Lookup, error) {
		f, ok := fakeTables.Load(t.Path)
		if !ok {
			return nil, errors.New("no such fake table " + t.Path)
		}
		return f.(*fakeTable), nil
	})
	connectors.DeclareTable("faketable")
}

func newFakeTable(t *testing.T, rows map[string]map[string]any) (string, *fakeTable) {
	f := &fakeTable{rows: rows, bad: map[string]error{}}
	name := strings.ReplaceAll(t.Name(), "/", "_")
	fakeTables.Store(name, f)
	return name, f
}

// orderScript joins orders to users by the field user.
func orderScript(table, step string) string {
	return `return {
  lookups = { users = { source = "faketable:` + table + `" } },
  parse = eddy.json { order = "integer", user = "integer?", amount = "number" },
  lookup = ` + step + `,
}`
}

func stepRuntime(t *testing.T, src string) *Runtime {
	t.Helper()
	p, err := LoadSource("orders.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	closeTables, err := p.OpenTables(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeTables)
	rt, err := p.NewRuntime(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return rt
}

// joinAll runs the orders through rt and renders each output record as
// its sorted fields.
func joinAll(t *testing.T, rt *Runtime, orders []string) []string {
	t.Helper()
	var out []string
	for _, o := range orders {
		_, rec, kept, err := rt.Process([]byte(o))
		if err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		if kept {
			out = append(out, fmt.Sprint(rec.Fields))
		}
	}
	return out
}

// TestLookupStepJoins compares inner and left joins with a reference made
// by a plain loop over the same orders and rows.
func TestLookupStepJoins(t *testing.T) {
	users := map[string]map[string]any{
		"1": {"name": "ann", "tier": "gold"},
		"2": {"name": "bob"}, // no tier: nil
		"4": {"name": "dee", "tier": "silver"},
	}
	var orders []string
	type order struct {
		id   int
		user any
		amt  float64
	}
	var in []order
	for i := range 12 {
		o := order{id: i, user: int64(i % 5), amt: float64(i) + 0.5}
		if i == 7 {
			o.user = nil // no key: no row
			orders = append(orders, fmt.Sprintf(`{"order":%d,"amount":%v}`, i, o.amt))
		} else {
			orders = append(orders, fmt.Sprintf(`{"order":%d,"user":%d,"amount":%v}`, i, o.user, o.amt))
		}
		in = append(in, o)
	}
	reference := func(left bool) []string {
		var out []string
		for _, o := range in {
			var row map[string]any
			if o.user != nil {
				row = users[fmt.Sprint(o.user)]
			}
			if row == nil && !left {
				continue
			}
			fields := []connectors.Field{{Name: "amount", Value: o.amt}, {Name: "name", Value: nil}, {Name: "order", Value: int64(o.id)}}
			if o.user != nil {
				fields = append(fields, connectors.Field{Name: "user", Value: o.user})
			}
			if row != nil {
				fields[1].Value = row["name"]
				if tier, ok := row["tier"]; ok {
					fields = append(fields, connectors.Field{Name: "user_tier", Value: tier})
				}
			}
			fields = dropNil(fields)
			out = append(out, fmt.Sprint(fields))
		}
		return out
	}
	for _, kind := range []string{"inner", "left"} {
		t.Run(kind, func(t *testing.T) {
			table, _ := newFakeTable(t, users)
			rt := stepRuntime(t, orderScript(table, `eddy.lookup{ table = "users", key = "user", kind = "`+kind+`", select = { "name", "tier as user_tier" } }`))
			got, want := joinAll(t, rt, orders), reference(kind == "left")
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("joined\n got  %v\n want %v", got, want)
			}
		})
	}
}

// dropNil leaves out nil fields, as a record's table does.
func dropNil(fs []connectors.Field) []connectors.Field {
	var out []connectors.Field
	for _, f := range fs {
		if f.Value != nil {
			out = append(out, f)
		}
	}
	// amount, name, order, user, user_tier: already sorted by name
	return out
}

// TestLookupStepSeesTheTableAsItIsNow: a record sees the row as the table
// holds it when the record is processed; a row deleted later is gone for
// later records.
func TestLookupStepSeesTheTableAsItIsNow(t *testing.T) {
	table, f := newFakeTable(t, map[string]map[string]any{"1": {"name": "ann"}})
	rt := stepRuntime(t, orderScript(table, `eddy.lookup{ table = "users", key = "user", kind = "left", select = { "name" } }`))
	name := func() any {
		_, rec, _, err := rt.Process([]byte(`{"order":1,"user":1,"amount":1}`))
		if err != nil {
			t.Fatal(err)
		}
		v, _ := rec.Get("name")
		return v
	}
	if got := name(); got != "ann" {
		t.Fatalf("first record: name %v, want ann", got)
	}
	f.set("1", map[string]any{"name": "anne"})
	if got := name(); got != "anne" {
		t.Fatalf("after an update: name %v, want anne", got)
	}
	f.set("1", nil)
	if got := name(); got != nil {
		t.Fatalf("after a tombstone: name %v, want none", got)
	}
	if f.starts != 1 {
		t.Fatalf("the table was started %d times, want once", f.starts)
	}
}

// TestLookupStepFeedsFilterAndMap: the step runs right after parse, so a
// declarative filter and map read the row's fields.
func TestLookupStepFeedsFilterAndMap(t *testing.T) {
	table, _ := newFakeTable(t, map[string]map[string]any{"1": {"tier": "gold"}, "2": {"tier": "none"}})
	src := `return {
  lookups = { users = { source = "faketable:` + table + `" } },
  parse = eddy.json { order = "integer", user = "integer" },
  lookup = eddy.lookup{ table = "users", key = "user", select = { "tier" } },
  filter = eddy.eq("tier", "gold"),
  map = eddy.map{ "order", level = eddy.upper("tier") },
}`
	rt := stepRuntime(t, src)
	got := joinAll(t, rt, []string{`{"order":1,"user":1}`, `{"order":2,"user":2}`, `{"order":3,"user":1}`})
	want := []string{"[{level GOLD} {order 1}]", "[{level GOLD} {order 3}]"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestLookupStepErrors(t *testing.T) {
	tests := []struct {
		name, step  string
		errContains string
	}{
		{"not eddy.lookup", `{ table = "users" }`, "lookup: want eddy.lookup{"},
		{"unknown table", `eddy.lookup{ table = "people", key = "user", select = { "name" } }`, `table "people" is not one of the pipeline's lookups (lookups: users)`},
		{"no key", `eddy.lookup{ table = "users", select = { "name" } }`, "table and key are required"},
		{"key not parsed", `eddy.lookup{ table = "users", key = "usr", select = { "name" } }`, `key: field "usr" is not one parse makes`},
		{"bad kind", `eddy.lookup{ table = "users", key = "user", kind = "outer", select = { "name" } }`, `kind: want "inner" or "left", got outer`},
		{"no select", `eddy.lookup{ table = "users", key = "user" }`, "select: want the row's fields"},
		{"bad select", `eddy.lookup{ table = "users", key = "user", select = { "name as" } }`, `select[1]: want "field" or "field as name", got "name as"`},
		{"collision", `eddy.lookup{ table = "users", key = "user", select = { "amount" } }`, `the record already has a field "amount"`},
		{"twice", `eddy.lookup{ table = "users", key = "user", select = { "name", "x as name" } }`, `field "name" is selected twice`},
		{"unknown field", `eddy.lookup{ table = "users", key = "user", select = { "name" }, on = "x" }`, "unknown field on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadSource("orders.lua", []byte(orderScript("x", tt.step)))
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want %q", err, tt.errContains)
			}
		})
	}
	t.Run("key on a table", func(t *testing.T) {
		_, err := LoadSource("p.lua", []byte(`return { lookups = { users = { source = "faketable:x", key = "id" } } }`))
		if want := `lookups.users: faketable:x is a table keyed by its records' keys: leave out key = "id"`; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want %q", err, want)
		}
	})
}

// TestLookupStepRecordErrors: what fails one record, naming the cause.
func TestLookupStepRecordErrors(t *testing.T) {
	table, f := newFakeTable(t, map[string]map[string]any{"1": {"name": "ann"}})
	f.bad["2"] = errors.New(`the row of key "2" is not a JSON object`)
	src := `return {
  lookups = { users = { source = "faketable:` + table + `" } },
  parse = function(line) return json.decode(line) end,
  lookup = eddy.lookup{ table = "users", key = "user", select = { "name" } },
}`
	rt := stepRuntime(t, src)
	for _, tt := range []struct{ rec, errContains string }{
		{`{"user":1,"name":"x"}`, `lookup users: the record already has a field "name", which select sets from the row`},
		{`{"user":2}`, `lookup users: the row of key "2" is not a JSON object`},
		{`{"user":{"a":1}}`, `key field "user" is a table`},
	} {
		_, _, _, err := rt.Process([]byte(tt.rec))
		if err == nil || !strings.Contains(err.Error(), tt.errContains) {
			t.Errorf("%s: got %v, want %q", tt.rec, err, tt.errContains)
		}
	}
}

// TestOpenTablesRefusesWhatCantStart: a table that can't start (a missing
// topic) stops the run before its first record, naming the lookup.
func TestOpenTablesRefusesWhatCantStart(t *testing.T) {
	table, f := newFakeTable(t, nil)
	f.startErr = errors.New(`kafka table "users": topic "users" does not exist`)
	p, err := LoadSource("orders.lua", []byte(orderScript(table, `eddy.lookup{ table = "users", key = "user", select = { "name" } }`)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.OpenTables(t.Context())
	if want := `orders.lua: lookup users: kafka table "users": topic "users" does not exist`; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// TestLookupStepKeysAggregates: a row's field can be the key of an
// aggregation, declared like a parsed field.
func TestLookupStepKeysAggregates(t *testing.T) {
	table, _ := newFakeTable(t, map[string]map[string]any{"1": {"tier": "gold"}, "2": {"tier": "silver"}})
	src := `return {
  lookups = { users = { source = "faketable:` + table + `" } },
  parse = eddy.json { user = "integer", amount = "number" },
  lookup = eddy.lookup{ table = "users", key = "user", select = { "tier" } },
  key = "tier",
  aggregate = { total = eddy.sum("amount") },
}`
	rt := stepRuntime(t, src)
	var keys []string
	for _, rec := range []string{`{"user":1,"amount":2}`, `{"user":2,"amount":3}`, `{"user":3,"amount":4}`, `{"user":1,"amount":5}`} {
		k, _, kept, err := rt.Process([]byte(rec))
		if err != nil {
			t.Fatal(err)
		}
		if kept {
			keys = append(keys, k.Key)
		}
	}
	if want := []string{"gold", "silver", "gold"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
}
