package scripting

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// sandbox is one LState with eddy's libraries and the watchdog's hooks.
type sandbox struct {
	L      *lua.LState
	script string
	limit  time.Duration
	intr   *interrupts

	// ctx is the running (or next) call's context: the watchdog and
	// Interrupt stop it from other goroutines, call replaces a stopped one.
	ctx atomic.Pointer[callCtx]
	// goCtx is for Go-side waits (lookups): cancelled by Interrupt and close.
	goCtx    context.Context
	goCancel context.CancelFunc
	started  atomic.Int64 // the watchdog's tick when the running call began, 0 when idle
	// poll asks the LState's goroutine to measure its memory at its next
	// instruction (callCtx.Done).
	poll     atomic.Bool
	nextPoll atomic.Int64 // the first watchdog tick at which to ask for the next
	mem      memory
	// spoiled says a call failed for memory and left the state holding
	// more than the limit: the Runtime replaces it.
	spoiled bool
}

func newSandbox(p *Pipeline) *sandbox {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       200,
		RegistrySize:        1024 * 4,
		RegistryMaxSize:     1024 * 1024,
		RegistryGrowStep:    64,
		IncludeGoStackTrace: false,
	})
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, name := range []string{"dofile", "loadfile", "require", "module", "_printregs", "collectgarbage", "newproxy"} {
		L.SetGlobal(name, lua.LNil)
	}
	s := &sandbox{L: L, script: p.Script, limit: p.CallTimeout, intr: p.intr, mem: memory{limit: p.MemoryLimit}}
	s.goCtx, s.goCancel = context.WithCancel(context.Background())
	s.guard()
	s.installLog(p.Script, p.logger)
	s.installJSON()
	installTime(L)
	installEddy(L)
	s.rearm()
	watch(s)
	p.intr.add(s)
	return s
}

func (s *sandbox) installLog(script string, logger *slog.Logger) {
	L := s.L
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("script", script)
	mod := L.NewTable()
	for name, level := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		level := level
		L.SetField(mod, name, L.NewFunction(func(L *lua.LState) int {
			parts := s.logParts(L)
			logger.Log(context.Background(), level, strings.Join(parts, " "), "at", where(L))
			return 0
		}))
	}
	L.SetGlobal("log", mod)
	// print goes to the log: stdout carries results only.
	L.SetGlobal("print", L.NewFunction(func(L *lua.LState) int {
		parts := s.logParts(L)
		logger.Info(strings.Join(parts, "\t"), "at", where(L))
		return 0
	}))
}

// logParts are a log call's arguments as strings, each cut to
// maxErrorBytes: a log line is for people.
func (s *sandbox) logParts(L *lua.LState) []string {
	parts := make([]string, L.GetTop())
	for i := range parts {
		parts[i] = shortError(L.ToStringMeta(L.Get(i + 1)).String())
	}
	return parts
}

// where names the script line calling a Go function, "netflow.lua:14".
func where(L *lua.LState) string {
	return strings.TrimSuffix(L.Where(1), ":")
}

// rearm gives the LState a fresh context after one was stopped.
func (s *sandbox) rearm() {
	c := newCallCtx(s)
	s.ctx.Store(c)
	s.L.SetContext(c)
	if s.intr.err() != nil {
		s.interrupt()
	}
}

// interrupt stops the running call, and any wait on goCtx, for good.
func (s *sandbox) interrupt() {
	s.ctx.Load().stop(&interruptError{at: s.script, cause: s.intr.err()})
	s.goCancel()
}

// timeLimitError is why the watchdog stopped a call.
type timeLimitError struct{ limit time.Duration }

func (e timeLimitError) Error() string {
	return fmt.Sprintf("call stopped after the %v time limit", e.limit)
}

// call runs fn with args in protected mode, returning nret results on the
// stack (the caller pops them). A call stopped by a limit or by Interrupt
// fails with an error naming the script and the line it was at.
func (s *sandbox) call(fn lua.LValue, nret int, args ...lua.LValue) error {
	if cause := s.intr.err(); cause != nil {
		return &interruptError{at: s.script, cause: cause}
	}
	L := s.L
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	c := s.ctx.Load()
	s.started.Store(dog.ticks.Load())
	err := L.PCall(len(args), nret, nil)
	s.started.Store(0)
	reason := c.Err()
	if reason != nil {
		s.rearm()
		if _, ok := reason.(*memoryError); ok {
			s.mem.held = s.measure(L)
			s.spoiled = s.mem.held > s.mem.limit
		}
	}
	switch {
	case err == nil:
		// A stop that came after the last instruction changed nothing.
		return nil
	case reason != nil:
		return s.stopped(err, reason)
	}
	return scriptError(err)
}

// stopped is the error of a call a limit or Interrupt stopped: the reason,
// and the script line gopher-lua raised it at.
func (s *sandbox) stopped(err, reason error) error {
	at := s.script
	if ae, ok := err.(*lua.ApiError); ok {
		msg := ae.Object.String()
		if i := strings.Index(msg, ": "+reason.Error()); i > 0 {
			at = msg[:i]
			if j := strings.LastIndex(at, ": "); j >= 0 {
				at = at[j+2:]
			}
		}
	}
	switch r := reason.(type) {
	case *interruptError:
		return &interruptError{at: at, cause: r.cause}
	case timeLimitError:
		pos := ""
		if at != s.script {
			pos = " at " + at
		}
		return fmt.Errorf("%s: %v%s (an endless loop?)", s.script, r, pos)
	}
	return fmt.Errorf("%s: %w", at, reason)
}

// scriptError strips gopher-lua's stack trace: the message already names
// script and line, and users never see Go stack traces.
func scriptError(err error) error {
	if ae, ok := err.(*lua.ApiError); ok {
		return fmt.Errorf("%s", shortError(ae.Object.String()))
	}
	return err
}

// maxErrorBytes bounds an error message taken from a script: a script may
// raise a string of any size, and it would go to dead letters and logs.
const maxErrorBytes = 4 << 10

func shortError(msg string) string {
	if len(msg) <= maxErrorBytes {
		return msg
	}
	return fmt.Sprintf("%s… (%d bytes in all)", strings.ToValidUTF8(msg[:maxErrorBytes], ""), len(msg))
}

func (s *sandbox) close() {
	unwatch(s)
	s.intr.remove(s)
	s.goCancel()
	s.L.Close()
}

// The watchdog: one goroutine for every sandbox of the process, started on
// first use, checking running calls every tick. Calls note the tick they
// start at (an atomic load, where time.Now would cost more than a short
// filter function).
var dog struct {
	once  sync.Once
	mu    sync.Mutex
	all   map[*sandbox]struct{}
	ticks atomic.Int64
}

const tick = 25 * time.Millisecond

func watch(s *sandbox) {
	dog.once.Do(func() {
		dog.all = map[*sandbox]struct{}{}
		dog.ticks.Store(1)
		go func() {
			t := time.NewTicker(tick)
			var heap uint64
			for range t.C {
				now := dog.ticks.Add(1)
				grew := heapGrew(&heap)
				dog.mu.Lock()
				for sb := range dog.all {
					if grew && now >= sb.nextPoll.Load() {
						sb.poll.Store(true)
					}
					st := sb.started.Load()
					if st != 0 && time.Duration(now-st-1)*tick >= sb.limit {
						sb.ctx.Load().stop(timeLimitError{sb.limit})
					}
				}
				dog.mu.Unlock()
			}
		}()
	})
	dog.mu.Lock()
	dog.all[s] = struct{}{}
	dog.mu.Unlock()
}

func unwatch(s *sandbox) {
	dog.mu.Lock()
	delete(dog.all, s)
	dog.mu.Unlock()
}
