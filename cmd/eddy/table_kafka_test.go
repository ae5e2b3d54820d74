package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/internal/testenv"
)

// usersTable is the test's model of the users table: the last row of each
// key, tombstones deleting.
type usersTable map[string]map[string]any

// tableTopic makes a compacted topic of 3 partitions for a table, and a
// client to write it.
func tableTopic(t *testing.T, brokers []string) (string, *kgo.Client) {
	t.Helper()
	topic := testenv.NewTopic(t, brokers, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	compact := "compact"
	if res, err := kadm.NewClient(cl).AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "cleanup.policy", Value: &compact}}, topic); err != nil || res[0].Err != nil {
		t.Fatalf("compact %s: %v %v", topic, err, res)
	}
	return topic, cl
}

// write produces rows to the table topic in order (a nil row is a
// tombstone) and applies them to the model.
func (u usersTable) write(t *testing.T, cl *kgo.Client, topic string, keys []string, rows []map[string]any) {
	t.Helper()
	for i, k := range keys {
		rec := &kgo.Record{Topic: topic, Key: []byte(k)}
		if rows[i] == nil {
			delete(u, k)
		} else {
			rec.Value, _ = json.Marshal(rows[i])
			u[k] = rows[i]
		}
		if err := cl.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

type order struct {
	ID     int     `json:"order"`
	User   string  `json:"user"`
	Amount float64 `json:"amount"`
}

// joinOrders is the reference: each order with its user's name and tier,
// as a map the way a JSON line decodes; inner drops orders without a user.
func joinOrders(orders []order, users usersTable, left bool) []map[string]any {
	var out []map[string]any
	for _, o := range orders {
		row, ok := users[o.User]
		if !ok && !left {
			continue
		}
		m := map[string]any{"order": float64(o.ID), "user": o.User, "amount": o.Amount}
		for _, f := range []string{"name", "tier"} {
			if v, ok := row[f]; ok {
				m[f] = v
			}
		}
		out = append(out, m)
	}
	return out
}

func writeOrders(t *testing.T, path string, orders []order) {
	t.Helper()
	var b strings.Builder
	for _, o := range orders {
		line, _ := json.Marshal(o)
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readJoined reads a records file, sorted by order.
func readJoined(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b map[string]any) int { return int(a["order"].(float64) - b["order"].(float64)) })
	return out
}

func ordersScript(t *testing.T, dir, tableURI, kind string) string {
	t.Helper()
	path := filepath.Join(dir, "orders_"+kind+".lua")
	src := `return {
  lookups = { users = { source = "` + tableURI + `" } },
  parse = eddy.json { order = "integer", user = "string", amount = "number" },
  lookup = eddy.lookup { table = "users", key = "user", kind = "` + kind + `", select = { "name", "tier" } },
}`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var tableRead = regexp.MustCompile(`kafka table read.* rows=(\d+) records=(\d+) took=(\S+)`)

// TestKafkaTableJoin joins orders from files to a users table on a
// compacted topic: the first run sees every row written before it
// (updates won, tombstones deleted); a restart on the same state reads
// only the records the table's topic gained in between (the table is kept
// in --state), and orders it processes see what changed; inner and left
// joins equal the reference; a missing table topic is refused.
func TestKafkaTableJoin(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic, cl := tableTopic(t, brokers)
	users := usersTable{}
	var keys []string
	var rows []map[string]any
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("u%d", i%80))
		switch {
		case i%9 == 4:
			rows = append(rows, nil)
		case i%4 == 1:
			rows = append(rows, map[string]any{"name": fmt.Sprintf("name%d", i)}) // no tier
		default:
			rows = append(rows, map[string]any{"name": fmt.Sprintf("name%d", i), "tier": []string{"gold", "silver"}[i%2]})
		}
	}
	users.write(t, cl, topic, keys, rows)

	dir := t.TempDir()
	in := filepath.Join(dir, "orders")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	mkOrders := func(from, n int) []order {
		var os []order
		for i := from; i < from+n; i++ {
			os = append(os, order{ID: i, User: fmt.Sprintf("u%d", (i*7)%90), Amount: float64(i) / 4})
		}
		return os
	}
	first := mkOrders(0, 300)
	writeOrders(t, filepath.Join(in, "part-1.jsonl"), first)
	tableURI := "kafka://" + strings.Join(brokers, ",") + "/" + topic
	left := ordersScript(t, dir, tableURI, "left")
	state := filepath.Join(dir, "state")
	run := func(script, out string, extra ...string) string {
		t.Helper()
		args := append([]string{"run", script, "--source", "dir:" + in, "--records", "file:" + out, "--state", state, "--until-idle"}, extra...)
		_, stderr, err := eddy(t, args...)
		if err != nil {
			t.Fatalf("eddy run: %v\n%s", err, stderr)
		}
		return stderr
	}

	out1 := filepath.Join(dir, "out1.jsonl")
	stderr := run(left, out1)
	if got, want := readJoined(t, out1), joinOrders(first, users, true); !reflect.DeepEqual(got, want) {
		t.Fatalf("first run: %d joined orders, want %d\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	m := tableRead.FindStringSubmatch(stderr)
	if m == nil || m[1] != fmt.Sprint(len(users)) || m[2] != "200" {
		t.Fatalf("first run: no 'kafka table read rows=%d records=200' in its log:\n%s", len(users), stderr)
	}
	t.Logf("first run read the table (%s rows, %s records) in %s", m[1], m[2], m[3])

	// Between the runs: updates, tombstones and new rows; then new orders.
	users.write(t, cl, topic, []string{"u1", "u3", "u5", "u85", "u86"}, []map[string]any{
		{"name": "renamed", "tier": "platinum"}, nil, nil, {"name": "new85", "tier": "gold"}, {"name": "new86"}})
	second := mkOrders(300, 200)
	writeOrders(t, filepath.Join(in, "part-2.jsonl"), second)
	out2 := filepath.Join(dir, "out2.jsonl")
	stderr = run(left, out2)
	if got, want := readJoined(t, out2), joinOrders(second, users, true); !reflect.DeepEqual(got, want) {
		t.Fatalf("restart: %d joined orders, want %d (the orders of part-2 against the table as changed)\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	if m := tableRead.FindStringSubmatch(stderr); m == nil || m[1] != fmt.Sprint(len(users)) || m[2] != "5" {
		t.Fatalf("restart: no 'kafka table read rows=%d records=5' (the 5 records written since) in its log:\n%s", len(users), stderr)
	} else {
		t.Logf("the restart read the table's tail (%s rows, %s records) in %s", m[1], m[2], m[3])
	}

	// Inner, on fresh state: every order against the final table.
	state = filepath.Join(dir, "state-inner")
	out3 := filepath.Join(dir, "out3.jsonl")
	run(ordersScript(t, dir, tableURI, "inner"), out3)
	if got, want := readJoined(t, out3), joinOrders(append(first, second...), users, false); !reflect.DeepEqual(got, want) {
		t.Fatalf("inner: %d joined orders, want %d\ngot  %v\nwant %v", len(got), len(want), got, want)
	}

	missing := topic + "_missing"
	_, stderr, err := eddy(t, "run", left, "--source", "dir:"+in, "--lookup", "users=kafka://"+strings.Join(brokers, ",")+"/"+missing, "--until-idle")
	if want := fmt.Sprintf("lookup users: kafka table %q: kafka %s: topic %q does not exist", missing, strings.Join(brokers, ","), missing); err == nil || !strings.Contains(stderr, want) {
		t.Fatalf("a missing table topic: %v, stderr:\n%s\nwant it refused with %q", err, stderr, want)
	}
}

// Two lookups of one topic each keep their table in --state under their
// own name, so they don't clash on one directory; the join is exact and
// a restart reads only the tail for each.
func TestTwoKafkaTablesOfOneTopic(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic, cl := tableTopic(t, brokers)
	users := usersTable{}
	var keys []string
	var rows []map[string]any
	for i := range 50 {
		keys = append(keys, fmt.Sprintf("u%d", i))
		rows = append(rows, map[string]any{"name": fmt.Sprintf("name%d", i), "tier": "gold"})
	}
	users.write(t, cl, topic, keys, rows)
	dir := t.TempDir()
	in := filepath.Join(dir, "orders")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	var orders []order
	for i := range 100 {
		orders = append(orders, order{ID: i, User: fmt.Sprintf("u%d", i%60), Amount: 1})
	}
	writeOrders(t, filepath.Join(in, "part-1.jsonl"), orders)
	tableURI := "kafka://" + strings.Join(brokers, ",") + "/" + topic
	script := filepath.Join(dir, "two.lua")
	src := `return {
  lookups = { users = { source = "` + tableURI + `" }, users_again = { source = "` + tableURI + `" } },
  parse = eddy.json { order = "integer", user = "string", amount = "number" },
  lookup = eddy.lookup { table = "users_again", key = "user", kind = "left", select = { "name", "tier" } },
}`
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	for i, wantRecords := range []string{"50", "0"} {
		out := filepath.Join(dir, fmt.Sprintf("out%d.jsonl", i))
		_, stderr, err := eddy(t, "run", script, "--source", "dir:"+in, "--records", "file:"+out, "--state", state, "--until-idle")
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, stderr)
		}
		if i == 0 {
			if got, want := readJoined(t, out), joinOrders(orders, users, true); !reflect.DeepEqual(got, want) {
				t.Fatalf("%d joined orders, want %d\ngot  %v\nwant %v", len(got), len(want), got, want)
			}
		}
		reads := tableRead.FindAllStringSubmatch(stderr, -1)
		if len(reads) != 2 || reads[0][2] != wantRecords || reads[1][2] != wantRecords {
			t.Fatalf("run %d: want two 'kafka table read ... records=%s' lines, got %v:\n%s", i+1, wantRecords, reads, stderr)
		}
	}
	for _, name := range []string{"users", "users_again"} {
		if _, err := os.Stat(filepath.Join(state, "tables", name)); err != nil {
			t.Errorf("the table of lookup %s is not kept under its name: %v", name, err)
		}
	}
}
