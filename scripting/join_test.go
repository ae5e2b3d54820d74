package scripting

import (
	"strings"
	"testing"
)

const twoSources = `sources = {
    auction = { uri = "file:a.json", parse = eddy.json{ id = "integer", t = "number" }, event_time = "t" },
    bid = { parse = eddy.json{ auction = "integer", t = "number" }, event_time = "t" },
  },`

// Mistakes in sources and joins are refused at load with a message naming
// the source, field or setting.
func TestJoinLoadErrors(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"unknown side", `join = eddy.join{ left = "auction", right = "bids", on = "id", window = eddy.tumbling("10s") },`,
			`join: right: "bids" is not one of the sources (auction, bid)`},
		{"missing key field", `join = eddy.join{ left = "auction", right = "bid", on = { "id", "auctoin" }, window = eddy.tumbling("10s") },`,
			`join: on: sources.bid has no field "auctoin" (it has auction, t)`},
		{"no window", `join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" } },`,
			`join: window: eddy.join needs window = eddy.tumbling(size), eddy.hopping(size, slide) or eddy.session(gap), or retention = "forever"`},
		{"session without a gap", `join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, window = eddy.session("0s") },`,
			`join: join session gap`},
		{"aggregate over a session join", `join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, window = eddy.session("5s"), select = { "auction.id" } }, key = "id", aggregate = { n = eddy.count() },`,
			`an aggregate over a session join's rows is not supported yet`},
		{"bad kind", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, after = "5s", kind = "outer" },`,
			`join: kind: want "inner", "left", "right", "full"`},
		{"outer join kept for ever", `join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, retention = "forever", kind = "left" },`,
			`with retention = "forever" none ever does: give a retention time`},
		{"bad retention", `join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, retention = "always" },`,
			`join: retention`},
		{"retention and interval", `join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, retention = "1h", after = "5s" },`,
			`after bounds an eddy.interval_join`},
		{"ends_at and after", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, after = "5s", ends_at = "t" },`,
			`after and ends_at both end the interval`},
		{"ends_at field missing", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, ends_at = "expires" },`,
			`join: ends_at: sources.auction has no field "expires"`},
		{"bad select", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, after = "5s", select = { "bid.price" } },`,
			`join: select[1]: sources.bid has no field "price"`},
		{"window column in interval join", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, after = "5s", select = { "window_start" } },`,
			`join: select[1]: "window_start": want "source.field"`},
		{"aggregate after join without select", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, after = "5s" }, key = "id", aggregate = { n = eddy.count() },`,
			`join: select: an aggregate over joined rows reads their columns`},
		{"aggregate keyed by another column", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, after = "5s", select = { "auction.id", "bid.t" } }, key = "t", aggregate = { n = eddy.count() },`,
			`key: an aggregate over joined rows is keyed first by the join key ("id")`},
		{"aggregate keyed by a right column", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, after = "5s", select = { "auction.id", "bid.t" } }, key = { "id", "t" }, aggregate = { n = eddy.count() },`,
			`key: "t": after the join key, a key column is a selected column of the left side`},
		{"stages after an aggregate over a regular join", `join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, retention = "1h", select = { "auction.id" } }, stages = { { key = "id", aggregate = { n = eddy.count() } }, { key = "n", aggregate = { k = eddy.count() } } },`,
			`stages: an aggregate over a regular join's rows has no window to close`},
		{"aggregate over a regular join keyed by another column", `join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, retention = "forever", select = { "auction.id", "bid.t" } }, key = "t", aggregate = { n = eddy.count() },`,
			`key: an aggregate over joined rows is keyed first by the join key ("id")`},
		{"aggregate over a full join", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, after = "5s", kind = "full", select = { "auction.id" } }, key = "id", aggregate = { n = eddy.count() },`,
			`an aggregate over a full join's rows is not supported: its lone right rows have no left columns`},
		{"aggregate emitting updates", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, after = "5s", select = { "auction.id" } }, key = "id", aggregate = { n = eddy.count() }, emit = "update",`,
			`emit: an aggregate over joined rows emits each window once`},
		{"typo in join", `join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, afer = "5s" },`,
			`join: unknown field afer`},
		{"single-source field beside sources", `parse = eddy.lines(),`,
			`parse: with sources, each source has its own parse: move it into sources.NAME`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadSource("j.lua", []byte("return { "+twoSources+c.body+" }"))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestSourceLoadErrors(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"event time on one only", `return { sources = { a = { event_time = "t", parse = eddy.json{ t = "number" } }, b = {} } }`,
			"sources: a have event_time and b don't"},
		{"unknown source field", `return { sources = { a = { url = "file:x" } } }`, "sources.a: unknown field url"},
		{"bad parse", `return { sources = { a = { parse = 3 } } }`, "sources.a.parse: want eddy.json"},
		{"join without sources", `return { parse = eddy.json{ id = "integer" }, join = eddy.join{ left = "a", right = "b", on = "id", window = eddy.tumbling("1s") } }`,
			"join: joins two of the pipeline's sources"},
		{"reserved field", `return { sources = { a = { parse = eddy.json{ _source = "string" } } } }`, `field "_source" is the one eddy tags`},
		{"test input not by source", `return { sources = { a = {} }, tests = { { input = { "x" }, want_records = {} } } }`,
			"want the lines of each source by name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadSource("s.lua", []byte(c.src))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// --source NAME=URI overrides one source and refuses a name the script
// lacks.
func TestSetSourceURI(t *testing.T) {
	p, err := LoadSource("s.lua", []byte("return { "+twoSources+" }"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetSourceURI("bid", "dir:bids"); err != nil {
		t.Fatal(err)
	}
	if got := p.source("bid").URI; got != "dir:bids" {
		t.Fatalf("bid's URI is %q", got)
	}
	if err := p.SetSourceURI("bids", "dir:x"); err == nil || !strings.Contains(err.Error(), `no source named "bids" (sources: auction, bid)`) {
		t.Fatalf("got %v", err)
	}
}

// A reload may not change the join: the waiting records were kept for it.
func TestReloadRefusesChangedJoin(t *testing.T) {
	load := func(after string) *Pipeline {
		p, err := LoadSource("j.lua", []byte("return { "+twoSources+` join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, after = "`+after+`" } }`))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := CheckReload(load("5s"), load("5s")); err != nil {
		t.Fatalf("same join refused: %v", err)
	}
	if err := CheckReload(load("5s"), load("6s")); err == nil || !strings.Contains(err.Error(), "the join changed") {
		t.Fatalf("got %v, want the join changed", err)
	}
}
