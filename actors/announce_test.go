package actors

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
)

// A shard's restored table sent in parts counts as the shard's table only
// with its last part: until then its partition is not held (a query would
// be answered complete without the parts to come), and the first part
// replaces what the shard sent before.
func TestATableInPartsIsHeldWithItsLastPart(t *testing.T) {
	p := load(t, strings.Replace(lazyScript, `emit = "final"`, `emit = "update"`, 1))
	em := &Emitter{e: &engine{cfg: Config{Pipeline: p, Shards: 1}}, table: map[string]*resultEntry{}, changed: map[string]struct{}{},
		fired: map[string]int64{}, shards: 1, restoring: map[string]bool{}, sent: map[string]map[int]bool{}}
	rows := func(keys ...string) []partial {
		var ps []partial
		for _, k := range keys {
			ps = append(ps, partial{key: k, raw: []byte(`[["` + k + `"],[1]]`)})
		}
		return ps
	}
	update := func(m *resultRows) {
		t.Helper()
		m.partition = "P"
		if err := em.update(m); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, held bool, keys ...string) {
		t.Helper()
		if got := em.held(); slices.Contains(got, "P") != held {
			t.Errorf("%s: held %v, want P held: %v", when, got, held)
		}
		if got := slices.Sorted(maps.Keys(em.table)); !slices.Equal(got, keys) {
			t.Errorf("%s: the table has %v, want %v", when, got, keys)
		}
	}
	update(&resultRows{reset: true, rows: rows("old")})
	check("the shard's table before", true, "old")
	update(&resultRows{reset: true, restored: true, more: true, total: 5, rows: rows("a", "b")})
	check("the first of three parts", false, "a", "b")
	update(&resultRows{part: true, restored: true, more: true, total: 3, rows: rows("c", "d")})
	check("the second part", false, "a", "b", "c", "d")
	update(&resultRows{part: true, restored: true, total: 1, rows: rows("e")})
	check("the last part", true, "a", "b", "c", "d", "e")
}

// A partition restored from its changelog with its shards' tables sent in
// parts of two rows adds up: every restored key and the records after.
func TestRestoredTableInPartsAddsUp(t *testing.T) {
	defer func(n int) { announcePart = n }(announcePart)
	announcePart = 2
	cl := &memio.Changelog{}
	want := map[string]string{}
	for i := range 20 {
		k := fmt.Sprintf("k%d", i)
		cl.Write("mem", []byte("agg/mem\x00"+k), []byte(`[["`+k+`"],[1]]`))
		want[k] = "1"
	}
	marker := connectors.ChangelogMarker{Checkpoint: 1, Position: connectors.Position("0"), Node: "filler"}
	if _, err := cl.Commit(context.Background(), map[string]connectors.ChangelogMarker{"mem": marker}); err != nil {
		t.Fatal(err)
	}
	want["k3"], want["k25"] = "2", "1"
	results := &memio.Sink{}
	if _, err := Run(context.Background(), Config{Pipeline: load(t, lazyScript), Source: &memio.Source{Lines: []string{`{"id":"k3"}`, `{"id":"k25"}`}},
		Store: openStore(t), Results: results, Changelog: cl, Shards: 3, Node: "test", MaxErrors: -1}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range results.Rows() {
		got[r.Key] = fmt.Sprint(r.Fields[1].Value)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("results:\n%v\nwant\n%v", got, want)
	}
}
