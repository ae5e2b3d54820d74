package scripting

import "testing"

// TestLuaTime: the time of a script's hooks adds up under their names, and
// hooks the script doesn't have stay at zero.
func TestLuaTime(t *testing.T) {
	p, rt := loadRuntime(t, "t.lua", `return {
  name = "t",
  parse = function(line) return { dev = line } end,
  filter = function(r) return #r.dev > 0 end,
  key = function(r) return r.dev end,
  aggregate = { n = eddy.count() },
}`)
	for i := 0; i < 20*luaSample; i++ {
		if _, _, _, err := rt.Process([]byte("Comp1")); err != nil {
			t.Fatal(err)
		}
	}
	got := p.LuaTime()
	for i, name := range HookNames {
		switch name {
		case "parse", "filter", "key":
			if got[i] <= 0 {
				t.Errorf("%s: %v, want the time of its calls", name, got[i])
			}
		default:
			if got[i] != 0 {
				t.Errorf("%s: %v, want 0 (the script has no such hook)", name, got[i])
			}
		}
	}
}
