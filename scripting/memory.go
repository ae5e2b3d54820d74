package scripting

import (
	"fmt"
	"runtime/metrics"
	"time"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// DefaultMemoryLimit is how much memory one Lua state may hold.
const DefaultMemoryLimit = 64 << 20

// memoryError is why a call was stopped for memory.
type memoryError struct {
	limit int64
	what  string // "string concat", "tables and strings"
	size  int64  // what it was about to build, or the state's size
	held  int64  // what the state held besides, when known
}

func (e *memoryError) Error() string {
	msg := fmt.Sprintf("memory limit of %s exceeded (%s of %s", sizeString(e.limit), e.what, sizeString(e.size))
	if e.held >= e.limit/4 {
		msg += fmt.Sprintf(" while the state holds %s", sizeString(e.held))
	}
	return msg + ")"
}

// sizeString writes n bytes as people read them: "64 MiB", "1.5 GiB", "512 bytes".
func sizeString(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1<<10 {
		return fmt.Sprintf("%d bytes", n)
	}
	f, u := float64(n)/(1<<10), 0
	for f >= 1<<10 && u < len(units)-1 {
		f, u = f/(1<<10), u+1
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d %s", int64(f), units[u])
	}
	return fmt.Sprintf("%.1f %s", f, units[u])
}

// memory is a sandbox's account of what its LState holds. held is the
// state's size at the last measure plus every byte a checked function
// (string building, unpack, json, …) allocated since: an over-estimate,
// made exact by measuring again whenever it would cross the limit. Only
// the LState's goroutine touches it.
type memory struct {
	limit int64
	held  int64
}

// fits counts n more bytes, measuring the state when the estimate would
// cross the limit; false means they don't fit. pending is what the caller
// built so far outside the state (a string being built), which a measure
// can't see.
func (s *sandbox) fits(L *lua.LState, n, pending int64) bool {
	m := &s.mem
	if n <= m.limit-m.held {
		m.held += n
		return true
	}
	m.held = s.measure(L) + pending
	if n > m.limit-m.held {
		return false
	}
	m.held += n
	return true
}

// reserve raises the memory limit's error, stopping the call, unless the
// state can take n more bytes for what.
func (s *sandbox) reserve(L *lua.LState, what string, n int64) {
	if !s.fits(L, n, 0) {
		s.memoryFail(L, what, n, 0)
	}
}

// memoryFail stops the running call for good (pcall can't catch it) and
// raises why; pending is as for fits.
func (s *sandbox) memoryFail(L *lua.LState, what string, size, pending int64) {
	err := &memoryError{limit: s.mem.limit, what: what, size: size, held: min(s.mem.held-pending, s.mem.limit)}
	s.ctx.Load().stop(err)
	L.RaiseError("%v", err)
}

// memoryPoll runs between two instructions when the watchdog saw the
// process heap grow (and the state's last walk is long enough ago): it measures the state and stops the call when it holds
// more than the limit (a table filled in a loop, which no function call
// of its own would see).
func (s *sandbox) memoryPoll() {
	s.poll.Store(false)
	start := time.Now()
	s.mem.held = s.measure(s.L)
	// A state that takes long to walk is walked less often: at most a
	// tenth of its time goes to walks.
	s.nextPoll.Store(dog.ticks.Load() + int64(10*time.Since(start)/tick))
	if s.mem.held > s.mem.limit {
		s.ctx.Load().stop(&memoryError{limit: s.mem.limit, what: "tables and strings", size: s.mem.held})
	}
}

// The sizes measure counts, close to what gopher-lua allocates on 64-bit
// Go: an LValue slot, a boxed number or string header, a table's struct,
// a hash entry (map slot, key list, key index), a function.
const (
	slotBytes  = 16
	boxBytes   = 16
	tableBytes = 160
	entryBytes = 112
	funcBytes  = 160
	// bigString is the length from which a string's bytes are counted once
	// however many values share them.
	bigString = 1 << 10
)

// maxFrames bounds the walk of the call stack (gopher-lua's GetStack
// keeps answering with the bottom frame past a tail call).
const maxFrames = 256

// measure estimates the memory the state holds: everything reachable from
// its globals, registry and the locals of every running function (its temporaries too). It stops
// counting once past the limit. Run it only on the LState's goroutine.
func (s *sandbox) measure(L *lua.LState) int64 {
	w := sizer{seen: map[any]struct{}{}, stopAt: s.mem.limit + 1}
	w.add(L.G.Global)
	w.add(L.G.Registry)
	for level := 0; level < maxFrames; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			break
		}
		for i := 1; ; i++ {
			name, v := L.GetLocal(dbg, i)
			if name == "" {
				break
			}
			w.add(v)
		}
	}
	return w.run()
}

// sizeOf estimates what v holds, up to just past the limit.
func (s *sandbox) sizeOf(v lua.LValue) int64 {
	w := sizer{seen: map[any]struct{}{}, stopAt: s.mem.limit + 1}
	w.add(v)
	return w.run()
}

// sizer walks values with its own stack, so a long chain of tables can't
// exhaust the Go stack.
type sizer struct {
	seen   map[any]struct{}
	stack  []lua.LValue
	n      int64
	stopAt int64
}

func (w *sizer) add(v lua.LValue) { w.stack = append(w.stack, v) }

func (w *sizer) run() int64 {
	for len(w.stack) > 0 && w.n < w.stopAt {
		v := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		w.n += w.value(v)
	}
	return w.n
}

// value is v's own size; the tables and functions it refers to go on
// the stack.
func (w *sizer) value(v lua.LValue) int64 {
	switch v := v.(type) {
	case lua.LNumber, lua.LString:
		return w.scalar(v)
	case *lua.LTable:
		if w.first(v) {
			return w.table(v)
		}
	case *lua.LFunction:
		if w.first(v) {
			for _, up := range v.Upvalues {
				w.scalar(up.Value())
			}
			if v.Env != nil {
				w.add(v.Env)
			}
			return funcBytes + int64(len(v.Upvalues))*boxBytes
		}
	case *lua.LUserData:
		if w.first(v) {
			w.add(v.Metatable)
			return funcBytes
		}
	}
	return 0
}

// first says whether the walk meets x for the first time.
func (w *sizer) first(x any) bool {
	if _, ok := w.seen[x]; ok {
		return false
	}
	w.seen[x] = struct{}{}
	return true
}

// scalar is the size of a number or string; anything else it puts on the
// stack, to be counted once.
func (w *sizer) scalar(v lua.LValue) int64 {
	switch v := v.(type) {
	case lua.LNumber:
		return 8
	case lua.LString:
		if len(v) >= bigString && !w.first(unsafe.StringData(string(v))) {
			return boxBytes
		}
		return boxBytes + int64(len(v))
	case *lua.LTable, *lua.LFunction, *lua.LUserData:
		w.add(v)
	}
	return 0
}

func (w *sizer) table(t *lua.LTable) int64 {
	n := int64(tableBytes)
	arr := t.Len()
	t.ForEach(func(k, v lua.LValue) {
		if w.n+n > w.stopAt {
			return // over the limit already: the rest doesn't matter
		}
		if i, ok := k.(lua.LNumber); ok && i >= 1 && int(i) <= arr && float64(int(i)) == float64(i) {
			n += slotBytes
		} else {
			n += entryBytes + w.scalar(k)
		}
		n += w.scalar(v)
	})
	if t.Metatable != nil {
		w.add(t.Metatable)
	}
	return n
}

// The watchdog asks every sandbox to measure itself when the process heap
// grew by heapPollStep since it last asked: a state filled in a loop is
// caught within about that much growth, while a steady heap costs nothing.
const heapPollStep = 16 << 20

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

// heapGrew reads the heap and says whether it grew by heapPollStep since
// base, moving base; only the watchdog goroutine calls it.
func heapGrew(base *uint64) bool {
	metrics.Read(heapSample)
	if heapSample[0].Value.Kind() != metrics.KindUint64 {
		return false
	}
	h := heapSample[0].Value.Uint64()
	switch {
	case h < *base:
		*base = h
	case h-*base >= heapPollStep:
		*base = h
		return true
	}
	return false
}
