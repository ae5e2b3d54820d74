package scripting

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// ErrInterrupted is wrapped by the error of every call that
// Pipeline.Interrupt stopped or refused.
var ErrInterrupted = errors.New("interrupted")

// Interrupt stops every call running in any Runtime made from p (parse
// workers, aggregators, the emitter) and makes every later call fail at
// once. A running call stops within a few milliseconds wherever it is: in
// Lua code, in pattern matching, or waiting for a lookup table. Each
// stopped or refused call returns an error that wraps both ErrInterrupted
// and cause (errors.Is works for either) and names the script, and the
// line where the call was when it stopped:
//
//	netflow.lua:14: interrupted: terminated
//
// Interrupt is safe to call from any goroutine, any number of times; the
// first cause is kept. A nil cause stands for "interrupted". There is no
// way back: a pipeline once interrupted stays so, and its runtimes are only
// good for Close. The cost on the hot path is one atomic load per call.
func (p *Pipeline) Interrupt(cause error) {
	if cause == nil {
		cause = errors.New("interrupted")
	}
	p.intr.interrupt(cause)
}

// interrupts are the sandboxes made from one pipeline, for Interrupt.
type interrupts struct {
	cause atomic.Pointer[error]
	mu    sync.Mutex
	live  map[*sandbox]struct{}
}

func newInterrupts() *interrupts { return &interrupts{live: map[*sandbox]struct{}{}} }

func (in *interrupts) interrupt(cause error) {
	if !in.cause.CompareAndSwap(nil, &cause) {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for sb := range in.live {
		sb.interrupt()
	}
}

// err is the error every call of an interrupted pipeline fails with, nil
// while it runs.
func (in *interrupts) err() error {
	if c := in.cause.Load(); c != nil {
		return *c
	}
	return nil
}

// add registers a new sandbox; one made after Interrupt is stopped at once.
func (in *interrupts) add(sb *sandbox) {
	in.mu.Lock()
	in.live[sb] = struct{}{}
	in.mu.Unlock()
	if in.err() != nil {
		sb.interrupt()
	}
}

func (in *interrupts) remove(sb *sandbox) {
	in.mu.Lock()
	delete(in.live, sb)
	in.mu.Unlock()
}

// interruptError is a call stopped by Pipeline.Interrupt.
type interruptError struct {
	at    string // "netflow.lua:14", or the script's name before a call ran
	cause error
}

func (e *interruptError) Error() string {
	return fmt.Sprintf("%s: %v: %v", e.at, ErrInterrupted, e.cause)
}

func (e *interruptError) Unwrap() []error { return []error{ErrInterrupted, e.cause} }

// callCtx is the context.Context an LState checks before every instruction
// (gopher-lua's loop selects on Done): closing done stops the running call
// at its next instruction, and at every instruction after that, so a
// script's pcall can't swallow the stop. Err says why. Pattern matching and
// the other long Go-side functions check stopped themselves.
//
// Done also runs the memory check the watchdog asks for: the VM calls it
// on the LState's own goroutine between instructions, the one moment the
// state can be walked safely. Nothing else may call Done: Go-side waits
// use the sandbox's goCtx.
type callCtx struct {
	done   chan struct{}
	reason atomic.Pointer[error]
	sb     *sandbox
}

func newCallCtx(sb *sandbox) *callCtx { return &callCtx{done: make(chan struct{}), sb: sb} }

func (c *callCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *callCtx) Value(any) any               { return nil }

func (c *callCtx) Done() <-chan struct{} {
	if c.sb.poll.Load() {
		c.sb.memoryPoll()
	}
	return c.done
}

func (c *callCtx) Err() error {
	if r := c.reason.Load(); r != nil {
		return *r
	}
	return nil
}

// stop ends the call with reason; the first reason wins.
func (c *callCtx) stop(reason error) {
	if c.reason.CompareAndSwap(nil, &reason) {
		close(c.done)
	}
}

// stopped says whether the call must end, for Go-side loops.
func (c *callCtx) stopped() bool { return c.reason.Load() != nil }

var _ context.Context = (*callCtx)(nil)

// checkStop raises the stop's reason when the running call was stopped,
// for Go functions that wait or loop.
func (s *sandbox) checkStop(L *lua.LState) {
	if c := s.ctx.Load(); c.stopped() {
		L.RaiseError("%v", c.Err())
	}
}

// MinMemoryLimit is the smallest memory limit a Lua state may have: eddy's
// libraries alone take a little of it.
const MinMemoryLimit = 1 << 20

// WithCallTimeout bounds each call into the script, whatever the script's
// call_timeout says (the --lua-timeout flag).
func WithCallTimeout(d time.Duration) LoadOption {
	return func(p *Pipeline) { p.CallTimeout, p.fixed.timeout = d, true }
}

// WithMemoryLimit bounds what each Lua state holds, whatever the script's
// memory_limit says (the --lua-memory flag). It applies from loading on,
// so a script whose top level needs more can be given more.
func WithMemoryLimit(n int64) LoadOption {
	return func(p *Pipeline) { p.MemoryLimit, p.fixed.memory = n, true }
}

// fixedLimits says which limits a LoadOption set, which the pipeline table
// must not change.
type fixedLimits struct{ timeout, memory bool }

// checkLimits refuses limits a LoadOption set out of range.
func (p *Pipeline) checkLimits() error {
	if err := p.SetCallTimeout(p.CallTimeout); err != nil {
		return err
	}
	return p.SetMemoryLimit(p.MemoryLimit)
}

// readLimits reads call_timeout and memory_limit from the pipeline table.
func (p *Pipeline) readLimits(t *lua.LTable) error {
	if v := t.RawGetString("call_timeout"); v != lua.LNil && !p.fixed.timeout {
		d, err := time.ParseDuration(lua.LVAsString(v))
		if err != nil || d <= 0 {
			return fmt.Errorf("call_timeout: want a duration such as \"500ms\", got %s", v)
		}
		p.CallTimeout = d
	}
	if v := t.RawGetString("memory_limit"); v != lua.LNil && !p.fixed.memory {
		n, err := ParseSize(lua.LVAsString(v))
		if err == nil {
			err = p.SetMemoryLimit(n)
		}
		if err != nil {
			return fmt.Errorf("memory_limit: %w", err)
		}
	}
	return nil
}

// SetCallTimeout sets how long one call into the script may run, before
// any runtime is made.
func (p *Pipeline) SetCallTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("a call timeout must be positive, got %v", d)
	}
	p.CallTimeout = d
	return nil
}

// SetMemoryLimit sets how many bytes each Lua state of the pipeline may
// hold, before any runtime is made.
func (p *Pipeline) SetMemoryLimit(n int64) error {
	if n < MinMemoryLimit {
		return fmt.Errorf("a memory limit of %s is below the least of %s", sizeString(n), sizeString(MinMemoryLimit))
	}
	p.MemoryLimit = n
	return nil
}

// ParseSize reads a size such as "64MiB", "512 KiB", "1GiB", "100MB" or a
// plain number of bytes. KiB, MiB and GiB are powers of 1024; kB, MB and
// GB of 1000.
func ParseSize(s string) (int64, error) {
	text := strings.TrimSpace(s)
	i := strings.IndexFunc(text, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := text, ""
	if i >= 0 {
		num, unit = text[:i], strings.TrimSpace(text[i:])
	}
	units := map[string]float64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}
	mult, ok := units[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || f*mult > 1<<50 {
		return 0, fmt.Errorf("want a size such as \"64MiB\", \"512KiB\" or \"1GiB\", got %q", s)
	}
	return int64(f * mult), nil
}
