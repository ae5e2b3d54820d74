package scripting

import (
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Lua time per hook, for metrics. Timing every call would cost two clock
// reads a call on the hot path; instead each runtime times about one call
// in luaSample, picked by a cheap per-runtime random sequence (a fixed
// stride would time the same hook every time when a record makes a power
// of two calls), and counts it luaSample times over. The totals are
// estimates, good to a few percent once thousands of calls have run.

// luaSample is how many calls one timed call stands for; a power of two.
const luaSample = 64

// The hooks time is counted by. Aggregate covers a Lua aggregate's init,
// add, merge and result.
const (
	hookParse = iota
	hookFilter
	hookKey
	hookRoute
	hookEventTime
	hookOnRecord
	hookOnWindow
	hookOnTimer
	hookAggregate
	hookMap
	hookHaving
	nHooks
)

// HookNames are the hooks LuaTime reports, in its order.
var HookNames = [nHooks]string{"parse", "filter", "key", "route", "event_time", "on_record", "on_window", "on_timer", "aggregate", "map", "having"}

// luaTimes adds up the estimated time of every runtime of a pipeline.
type luaTimes struct {
	nanos [nHooks]atomic.Int64
}

// LuaTime returns the estimated time the pipeline's runtimes have spent in
// each hook (indexed like HookNames) since it was loaded.
func (p *Pipeline) LuaTime() [nHooks]time.Duration {
	var out [nHooks]time.Duration
	for i := range out {
		out[i] = time.Duration(p.luaTime.nanos[i].Load())
	}
	return out
}

// sampled advances the runtime's random sequence (xorshift32) and says
// whether to time this call.
func (rt *Runtime) sampled() bool {
	x := rt.rnd
	if x == 0 {
		x = 0x9e3779b9
	}
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	rt.rnd = x
	return x&(luaSample-1) == 0
}

// hookOf names the hook fn is, for a timed call.
func (rt *Runtime) hookOf(fn lua.LValue) int {
	switch fn {
	case rt.parse:
		return hookParse
	case rt.filter:
		return hookFilter
	case rt.key:
		return hookKey
	case rt.route:
		return hookRoute
	case rt.eventFn:
		return hookEventTime
	case rt.onRecord:
		return hookOnRecord
	case rt.onWindow:
		return hookOnWindow
	case rt.onTimer:
		return hookOnTimer
	case rt.mapFn:
		return hookMap
	case rt.havingFn:
		return hookHaving
	}
	return hookAggregate
}

// CarryOn makes p, a reloaded version of the script old runs, add its Lua
// time to old's totals, so the counters read from either keep counting
// across the reload.
func (p *Pipeline) CarryOn(old *Pipeline) { p.luaTime = old.luaTime }
