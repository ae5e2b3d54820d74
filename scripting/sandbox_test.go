package scripting

import (
	"strings"
	"testing"
	"time"
)

// process loads src as a pipeline whose parse function is under test and
// runs one record through it.
func process(t *testing.T, src string, line string) error {
	t.Helper()
	p, err := LoadSource("box.lua", []byte(src))
	if err != nil {
		return err
	}
	p.CallTimeout = 300 * time.Millisecond
	rt, err := p.NewRuntime(true)
	if err != nil {
		return err
	}
	defer rt.Close()
	_, _, _, err = rt.Process([]byte(line))
	return err
}

func TestSandbox(t *testing.T) {
	tests := []struct {
		name, body  string
		errContains string
	}{
		{"os is absent", `os.execute("touch /tmp/pwned")`, `box.lua:1: attempt to index a non-table object(nil) with key 'execute'`},
		{"io is absent", `io.open("/etc/passwd")`, `box.lua:1: attempt to index a non-table object(nil) with key 'open'`},
		{"require is absent", `require("os")`, `box.lua:1: attempt to call a non-function object`},
		{"dofile is absent", `dofile("/etc/passwd")`, `box.lua:1: attempt to call a non-function object`},
		{"loadfile is absent", `loadfile("/etc/passwd")`, `box.lua:1: attempt to call a non-function object`},
		{"debug is absent", `debug.getinfo(1)`, `box.lua:1: attempt to index a non-table object(nil) with key 'getinfo'`},
		{"package is absent", `package.loadlib("x", "y")`, `box.lua:1: attempt to index a non-table object(nil) with key 'loadlib'`},
		{"an endless loop is stopped", `while true do end`, `box.lua: call stopped after the 300ms time limit at box.lua:1`},
		{"a huge string.rep is refused", `local s = string.rep("x", 1e9)`, `box.lua:1: memory limit of 64 MiB exceeded (string.rep of 953.7 MiB)`},
		{"error() names script and line", `error("bad record")`, `box.lua:1: bad record`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "return { parse = function(line) " + tc.body + "\n return {} end }"
			err := process(t, src, "x")
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("error %v, want it to contain %q", err, tc.errContains)
			}
		})
	}
}

// After the watchdog stops a call, the runtime keeps working.
func TestRuntimeUsableAfterTimeout(t *testing.T) {
	src := `return { parse = function(line) if line == "loop" then while true do end end return { line = line } end }`
	p, err := LoadSource("loop.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p.CallTimeout = 200 * time.Millisecond
	rt, err := p.NewRuntime(true)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if _, _, _, err := rt.Process([]byte("loop")); err == nil || !strings.Contains(err.Error(), "time limit") {
		t.Fatalf("want a time-limit error, got %v", err)
	}
	_, rec, kept, err := rt.Process([]byte("fine"))
	if err != nil || !kept {
		t.Fatalf("after a timeout: kept=%v err=%v", kept, err)
	}
	if v, _ := rec.Get("line"); v != "fine" {
		t.Fatalf("record %+v", rec)
	}
}

func TestHelpers(t *testing.T) {
	src := `return { parse = function(line)
		local v = json.decode(line)
		local t = time.parse(v.ts)
		return { n = v.n * 2, ts = t, back = time.format(t), enc = json.encode({ b = v.list, a = 1 }) }
	end }`
	p, err := LoadSource("h.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := p.NewRuntime(true)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	_, rec, _, err := rt.Process([]byte(`{"n": 21, "ts": "2021-11-10T11:10:17Z", "list": [1, "x", true]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"n": int64(42), "ts": int64(1636542617), "back": "2021-11-10T11:10:17Z", "enc": `{"a":1,"b":[1,"x",true]}`}
	for k, w := range want {
		if g, _ := rec.Get(k); g != w {
			t.Errorf("%s = %#v, want %#v", k, g, w)
		}
	}
	_, _, _, err = rt.Process([]byte(`{"n": 1, "ts": "yesterday"}`))
	if err == nil || !strings.Contains(err.Error(), `h.lua:3: time.parse: parsing time "yesterday"`) {
		t.Errorf("bad time: %v", err)
	}
}
