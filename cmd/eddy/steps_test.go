package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The netflow script with its declarative eddy.is_in filter replaced by
// the Lua function it stands for gives the same top 20 over the same
// generated flows, and --sink discard writes nothing.
func TestDeclarativeNetflowEqualsLua(t *testing.T) {
	src, err := os.ReadFile(netflowScript)
	if err != nil {
		t.Fatal(err)
	}
	declFilter := `filter = eddy.is_in("dstport", { "80", "443", 80, 443 }),`
	if !strings.Contains(string(src), declFilter) {
		t.Fatalf("%s no longer has the filter this test replaces", netflowScript)
	}
	luaFilter := `filter = function(flow) return ({ ["80"] = true, ["443"] = true, [80] = true, [443] = true })[flow.dstport] == true end,`
	luaPath := filepath.Join(t.TempDir(), "netflow_lua.lua")
	if err := os.WriteFile(luaPath, []byte(strings.Replace(string(src), declFilter, luaFilter, 1)), 0o644); err != nil {
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
	want, got := run(luaPath), run(netflowScript)
	if n := strings.Count(want, "\n"); n != 20 {
		t.Fatalf("the Lua script gave %d rows, want 20:\n%s", n, want)
	}
	if got != want {
		t.Errorf("declarative filter:\n%s\nLua filter:\n%s", got, want)
	}
	if out := run(netflowScript, "--sink", "discard"); out != "" {
		t.Errorf("--sink discard wrote to stdout:\n%s", out)
	}
}
