package scripting

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// signalHandler is a slog handler that reports each message on a channel,
// so a test can wait until a script reached a point.
type signalHandler chan string

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h <- r.Message:
	default:
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

// TestInterrupt stops calls stuck in Lua, in pattern matching and in a
// lookup that waits, from another goroutine, and refuses later calls.
func TestInterrupt(t *testing.T) {
	tests := []struct{ name, body, fields string }{
		{"endless loop", `while true do end`, ""},
		{"a lookup waiting for its table", `lookup("users", 1)`, `lookups = { users = { source = "fakelookup:TestInterrupt", key = "id" } },`},
		{"pattern matching", `string.find(string.rep("a", 5000), ".-.-.-.-.-.-.-.-b")`, ""},
		{"pcall can't swallow it", `while true do pcall(function() while true do end end) end`, ""},
	}
	fakes.Store("TestInterrupt", &fakeLookup{down: 1 << 30}) // never answers
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			started := make(signalHandler, 1)
			src := "return { " + tc.fields + " parse = function(line) log.info('started') " + tc.body + "\n return {} end }"
			p, err := LoadSource("stuck.lua", []byte(src), WithLogger(slog.New(started)))
			if err != nil {
				t.Fatal(err)
			}
			p.CallTimeout = time.Hour
			rt, err := p.NewRuntime(false)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			done := make(chan error, 1)
			go func() {
				_, _, _, err := rt.Process([]byte("x"))
				done <- err
			}()
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("the call never started")
			}
			cause := errors.New("terminated")
			at := time.Now()
			p.Interrupt(cause)
			select {
			case err = <-done:
				t.Logf("stopped %v after Interrupt", time.Since(at))
			case <-time.After(10 * time.Second):
				t.Fatal("the call was not interrupted within 10s")
			}
			if !errors.Is(err, ErrInterrupted) || !errors.Is(err, cause) || !strings.Contains(err.Error(), "stuck.lua:1: interrupted: terminated") {
				t.Fatalf("error %v, want stuck.lua:1: interrupted: terminated wrapping ErrInterrupted and the cause", err)
			}
			// Later calls, in this runtime or a new one, fail at once.
			if _, _, _, err := rt.Process([]byte("x")); !errors.Is(err, ErrInterrupted) || !errors.Is(err, cause) {
				t.Fatalf("a call after Interrupt: %v", err)
			}
			if _, err := p.NewRuntime(false); !errors.Is(err, ErrInterrupted) {
				t.Fatalf("a runtime made after Interrupt: %v", err)
			}
		})
	}
}

// A call over the memory limit that left a global holding more than the
// limit has its state started afresh, with a warning; a call that left
// nothing behind keeps its state.
func TestStateOverLimitStartsAfresh(t *testing.T) {
	src := `return { parse = function(line)
		kept = kept or line
		if line == "bomb" then
			big = {}
			for i = 1, 1e9 do big[#big + 1] = { i } end
		elseif line == "local bomb" then
			local s = "x"
			while true do s = s .. s end
		end
		return { line = tostring(big == nil) .. " " .. kept }
	end }`
	warned := make(signalHandler, 10)
	p, err := LoadSource("afresh.lua", []byte(src), WithLogger(slog.New(warned)), WithMemoryLimit(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := p.NewRuntime(true)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	steps := []struct{ line, want, errContains string }{
		{"first", "true first", ""},
		{"local bomb", "", "afresh.lua:8: memory limit of 4 MiB exceeded (string concat"},
		{"after", "true first", ""}, // the state was kept
		{"bomb", "", "memory limit of 4 MiB exceeded (tables and strings"},
		{"after", "true after", ""}, // a fresh state: big and kept are gone
	}
	for _, st := range steps {
		_, rec, _, err := rt.Process([]byte(st.line))
		if st.errContains != "" {
			if err == nil || !strings.Contains(err.Error(), st.errContains) {
				t.Fatalf("%s: error %v, want %q", st.line, err, st.errContains)
			}
			continue
		}
		if v, _ := rec.Get("line"); err != nil || v != st.want {
			t.Fatalf("%s: got %v (error %v), want %q", st.line, v, err, st.want)
		}
	}
	for {
		select {
		case msg := <-warned:
			if strings.Contains(msg, "starts afresh") {
				return
			}
		default:
			t.Fatal("no warning that the state started afresh")
		}
	}
}

func TestLimitsConfig(t *testing.T) {
	tests := []struct {
		name, fields string
		opts         []LoadOption
		wantMemory   int64
		wantTimeout  time.Duration
		errContains  string
	}{
		{"defaults", "", nil, DefaultMemoryLimit, DefaultCallTimeout, ""},
		{"from the table", `memory_limit = "128MiB", call_timeout = "5s",`, nil, 128 << 20, 5 * time.Second, ""},
		{"decimal units", `memory_limit = "100MB",`, nil, 100e6, DefaultCallTimeout, ""},
		{"bytes", `memory_limit = 2097152,`, nil, 2 << 20, DefaultCallTimeout, ""},
		{"flags win", `memory_limit = "128MiB", call_timeout = "5s",`, []LoadOption{WithMemoryLimit(32 << 20), WithCallTimeout(time.Second)}, 32 << 20, time.Second, ""},
		{"too small", `memory_limit = "512KiB",`, nil, 0, 0, "memory_limit: a memory limit of 512 KiB is below the least of 1 MiB"},
		{"not a size", `memory_limit = "lots",`, nil, 0, 0, `memory_limit: want a size such as "64MiB", "512KiB" or "1GiB", got "lots"`},
		{"flag too small", "", []LoadOption{WithMemoryLimit(1000)}, 0, 0, "limits.lua: a memory limit of 1000 bytes is below the least of 1 MiB"},
		{"bad timeout", `call_timeout = "0s",`, nil, 0, 0, `call_timeout: want a duration such as "500ms", got 0s`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "return { " + tc.fields + " parse = function(line) return { line = line } end }"
			p, err := LoadSource("limits.lua", []byte(src), tc.opts...)
			if tc.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errContains) {
					t.Fatalf("error %v, want %q", err, tc.errContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.MemoryLimit != tc.wantMemory || p.CallTimeout != tc.wantTimeout {
				t.Fatalf("memory %d, timeout %v; want %d, %v", p.MemoryLimit, p.CallTimeout, tc.wantMemory, tc.wantTimeout)
			}
		})
	}
}
