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
	tests := []struct{ name, body string }{
		{"endless loop", `while true do end`},
		{"pattern matching", `string.find(string.rep("a", 5000), ".-.-.-.-.-.-.-.-b")`},
		{"pcall can't swallow it", `while true do pcall(function() while true do end end) end`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			started := make(signalHandler, 1)
			src := "return { parse = function(line) log.info('started') " + tc.body + "\n return {} end }"
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
			p.Interrupt(cause)
			select {
			case err = <-done:
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
