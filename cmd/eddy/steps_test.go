package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The netflow script with its Lua filter replaced by the declarative
// eddy.is_in gives the same top 20 over the same generated flows, and
// --sink discard writes nothing.
func TestDeclarativeNetflowEqualsLua(t *testing.T) {
	src, err := os.ReadFile(netflowScript)
	if err != nil {
		t.Fatal(err)
	}
	luaFilter := "filter = function(flow)\n    return web[flow.dstport] == true\n  end,"
	if !strings.Contains(string(src), luaFilter) {
		t.Fatalf("%s no longer has the filter this test replaces", netflowScript)
	}
	decl := strings.Replace(string(src), luaFilter, `filter = eddy.is_in("dstport", { "80", "443", 80, 443 }),`, 1)
	declPath := filepath.Join(t.TempDir(), "netflow_declarative.lua")
	if err := os.WriteFile(declPath, []byte(decl), 0o644); err != nil {
		t.Fatal(err)
	}
	source := "gen:netflow?count=50000&seed=11"
	run := func(script string, extra ...string) string {
		args := append([]string{"run", script, "--source", source, "--until-idle", "--emit", "final", "-q"}, extra...)
		out, stderr, err := eddy(t, args...)
		if err != nil {
			t.Fatalf("eddy %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	want, got := run(netflowScript), run(declPath)
	if n := strings.Count(want, "\n"); n != 20 {
		t.Fatalf("the Lua script gave %d rows, want 20:\n%s", n, want)
	}
	if got != want {
		t.Errorf("declarative filter:\n%s\nLua filter:\n%s", got, want)
	}
	if out := run(declPath, "--sink", "discard"); out != "" {
		t.Errorf("--sink discard wrote to stdout:\n%s", out)
	}
}
