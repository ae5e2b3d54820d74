package pipetest

import (
	"context"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/scripting"
)

// The seed pipelines' inline tests pass on the real engine.
func TestSeedScripts(t *testing.T) {
	for _, path := range []string{"../../scripts/netflow_webservers.lua", "../../scripts/tshark_ips.lua"} {
		p, err := scripting.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Tests) == 0 {
			t.Fatalf("%s has no inline tests", path)
		}
		results, err := Run(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if !r.Passed() {
				t.Errorf("%s: %s:\n%s", path, r.Name, strings.Join(r.Failures, "\n"))
			}
		}
	}
}

// A test whose expectations are wrong fails, with a diff naming the rows.
func TestFailingTestShowsDiff(t *testing.T) {
	src := `return {
  parse = eddy.json { k = "string" },
  key = "k",
  aggregate = { n = eddy.count() },
  order_by = { "k" },
  tests = { { name = "wrong", input = { '{"k":"a"}', '{"k":"a"}', 'x' }, want = { { k = "a", n = 3 } }, dead_letters = 0 } },
}`
	p, err := scripting.LoadSource("wrong.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	results, err := Run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Passed() {
		t.Fatalf("want one failing test, got %+v", results)
	}
	got := strings.Join(results[0].Failures, "\n")
	for _, want := range []string{`- {"k":"a","n":3}`, `+ {"k":"a","n":2}`, "dead letters: got 1, want 0", "not JSON"} {
		if !strings.Contains(got, want) {
			t.Errorf("failure text lacks %q:\n%s", want, got)
		}
	}
}
