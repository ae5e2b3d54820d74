package scripting

import (
	"context"
	"errors"
	"fmt"
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
