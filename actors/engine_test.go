package actors

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

const countScript = `
local web = { ["80"] = true, ["443"] = true }
return {
  parse = eddy.json { dstdevice = "string", dstport = "string|number" },
  filter = function(r) return web[tostring(r.dstport)] end,
  key = "dstdevice",
  aggregate = { count = eddy.count() },
  order_by = { "count desc", "dstdevice" },
  limit = 3,
  emit = "final",
}`

func load(t *testing.T, src string) *scripting.Pipeline {
	t.Helper()
	p, err := scripting.LoadSource("test.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func rowsText(rows []connectors.Row) string {
	var sb strings.Builder
	for _, r := range rows {
		sb.Write(connectors.AppendJSON(nil, r))
		sb.WriteByte('\n')
	}
	return sb.String()
}

func TestRunCounts(t *testing.T) {
	var lines []string
	for i := 0; i < 5000; i++ {
		port := []string{"80", "443", "22", "Port1"}[i%4]
		lines = append(lines, fmt.Sprintf(`{"dstdevice":"C%d","dstport":%q}`, i%7, port))
	}
	lines = append(lines, `{"dstdevice":"C1","dstport":80}`, `not json`, `{"dstdevice":5,"dstport":"80"}`)
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	results, dead := &memio.Sink{}, &memio.Sink{}
	sum, err := Run(context.Background(), Config{
		Pipeline: load(t, countScript), Source: &memio.Source{Lines: lines, BatchSize: 100}, Store: store,
		Results: results, DeadLetters: dead, Shards: 3, MaxErrors: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for i := 0; i < 5000; i++ {
		if i%4 < 2 {
			want[fmt.Sprintf("C%d", i%7)]++
		}
	}
	want["C1"]++
	got := rowsText(results.Rows())
	t.Logf("summary %+v\n%s", sum, got)
	if len(dead.Rows()) != 2 {
		t.Errorf("dead letters: got %d, want 2:\n%s", len(dead.Rows()), rowsText(dead.Rows()))
	}
}
