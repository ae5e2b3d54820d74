package scripting

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"

	"github.com/eddy-stream/eddy/connectors"
)

// The per-key hooks. on_record(record, ctx) runs for each record of a key,
// on_window(row, ctx) when one of the key's windows fires, on_timer(name,
// ctx) when one of its timers does. ctx carries the key, the key's state
// table (checkpointed with everything else), the time, the watermark, and
// functions to set timers and emit rows:
//
//	ctx.key, ctx.state, ctx.time, ctx.watermark   (times in Unix seconds)
//	ctx.set_timer(name, t)              event-time timer: fires once the watermark passes t
//	ctx.set_processing_timer(name, s)   fires s seconds of wall-clock time from now
//	ctx.timer(name)                     when a timer is set to fire, or nil
//	ctx.delete_timer(name)
//	ctx.emit(sink, row)                 a row to one of the pipeline's sinks

// KeyState is one key's hook state: the state table and the timers.
type KeyState struct {
	state  lua.LValue // a table in the owning runtime's LState
	Timers map[string]Timer
	// Join holds the key's records waiting for a join partner (join.go).
	Join *JoinState
}

// Timer is when a timer fires, in Unix milliseconds: event time, or wall
// clock for a processing-time timer.
type Timer struct {
	At         int64
	Processing bool
}

// Emit is a row a hook sent to a sink.
type Emit struct {
	Sink string
	Row  connectors.Row
	// Window is a joined row's window: the join's, or its left record's
	// interval (both ends included); what an aggregate over the join's
	// rows groups it in.
	Window [2]int64
}

// hookContext is the ctx table handed to every hook, reused between calls;
// its functions act on the key state of the call in progress.
type hookContext struct {
	rt      *Runtime
	tbl     *lua.LTable
	cur     *KeyState
	key     string
	emits   []Emit
	changed bool // timers changed during the call
}

func newHookContext(rt *Runtime) *hookContext {
	L := rt.sb.L
	h := &hookContext{rt: rt, tbl: L.NewTable()}
	fn := func(f func(L *lua.LState) int) *lua.LFunction { return L.NewFunction(f) }
	h.tbl.RawSetString("set_timer", fn(func(L *lua.LState) int {
		name := L.CheckString(1)
		ms, err := secondsToMillis(float64(L.CheckNumber(2)))
		if err != nil {
			L.ArgError(2, err.Error())
		}
		h.cur.Timers[name] = Timer{At: ms}
		h.changed = true
		return 0
	}))
	h.tbl.RawSetString("set_processing_timer", fn(func(L *lua.LState) int {
		name := L.CheckString(1)
		delay := float64(L.CheckNumber(2))
		if delay < 0 {
			L.ArgError(2, "a delay can't be negative")
		}
		h.cur.Timers[name] = Timer{At: time.Now().UnixMilli() + int64(delay*1000), Processing: true}
		h.changed = true
		return 0
	}))
	h.tbl.RawSetString("timer", fn(func(L *lua.LState) int {
		if t, ok := h.cur.Timers[L.CheckString(1)]; ok {
			L.Push(lua.LNumber(float64(t.At) / 1000))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}))
	h.tbl.RawSetString("delete_timer", fn(func(L *lua.LState) int {
		delete(h.cur.Timers, L.CheckString(1))
		h.changed = true
		return 0
	}))
	h.tbl.RawSetString("emit", fn(func(L *lua.LState) int {
		sink := L.CheckString(1)
		row, err := rowOf(L.CheckTable(2), h.key)
		if err != nil {
			L.RaiseError("ctx.emit: %v", err)
		}
		h.emits = append(h.emits, Emit{Sink: sink, Row: row})
		return 0
	}))
	return h
}

// NewKeyState returns an empty key state.
func (rt *Runtime) NewKeyState() *KeyState { return &KeyState{Timers: map[string]Timer{}} }

// HookResult is what a hook call did: the rows it emitted and whether it
// changed the key's timers.
type HookResult struct {
	Emits         []Emit
	TimersChanged bool
}

func (rt *Runtime) callHook(fn lua.LValue, name string, ks *KeyState, key string, at, watermark int64, first lua.LValue) (HookResult, error) {
	h := rt.hooks
	L := rt.sb.L
	if ks.state == nil {
		ks.state = L.NewTable()
	}
	h.cur, h.key, h.emits, h.changed = ks, key, nil, false
	h.tbl.RawSetString("key", lua.LString(key))
	h.tbl.RawSetString("state", ks.state)
	h.tbl.RawSetString("time", lua.LNumber(float64(at)/1000))
	h.tbl.RawSetString("watermark", lua.LNumber(float64(watermark)/1000))
	// ended: fired because the input ended (the watermark jumped to the end
	// of time), not because event time got there.
	h.tbl.RawSetString("ended", lua.LBool(watermark == math.MaxInt64))
	err := rt.call(fn, 0, first, h.tbl)
	// The script may have replaced ctx.state with a new table.
	if st, ok := h.tbl.RawGetString("state").(*lua.LTable); ok {
		ks.state = st
	}
	res := HookResult{Emits: h.emits, TimersChanged: h.changed}
	h.cur, h.emits = nil, nil
	if err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}

// OnRecord runs on_record for one record of key at event time ms.
func (rt *Runtime) OnRecord(ks *KeyState, key string, rec map[string]any, ms, watermark int64) (HookResult, error) {
	if !rt.p.onRecord {
		return HookResult{}, nil
	}
	return rt.callHook(rt.onRecord, "on_record", ks, key, ms, watermark, toLua(rt.sb.L, rec))
}

// OnWindow runs on_window for a fired window's result row.
func (rt *Runtime) OnWindow(ks *KeyState, key string, row connectors.Row, end, watermark int64) (HookResult, error) {
	if !rt.p.onWindow {
		return HookResult{}, nil
	}
	t := rt.sb.L.CreateTable(0, len(row.Fields))
	for _, f := range row.Fields {
		t.RawSetString(f.Name, toLua(rt.sb.L, f.Value))
	}
	return rt.callHook(rt.onWindow, "on_window", ks, key, end, watermark, t)
}

// OnTimer runs on_timer for a timer that fired; it is removed first, so
// the hook may set it again.
func (rt *Runtime) OnTimer(ks *KeyState, key, name string, watermark int64) (HookResult, error) {
	t := ks.Timers[name]
	delete(ks.Timers, name)
	if rt.p.Join != nil {
		return rt.joinTimer(ks, key, t.At), nil
	}
	if !rt.p.onTimer {
		return HookResult{TimersChanged: true}, nil
	}
	res, err := rt.callHook(rt.onTimer, "on_timer", ks, key, t.At, watermark, lua.LString(name))
	res.TimersChanged = true
	return res, err
}

// EncodeKeyState appends a key state as JSON: {"state":…,"timers":{…}}.
func (rt *Runtime) EncodeKeyState(dst []byte, ks *KeyState) ([]byte, error) {
	var st any = map[string]any{}
	if ks.state != nil {
		var err error
		if st, err = toGo(ks.state); err != nil {
			return nil, fmt.Errorf("ctx.state: %w", err)
		}
	}
	timers := map[string]any{}
	names := make([]string, 0, len(ks.Timers))
	for n := range ks.Timers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := ks.Timers[n]
		timers[n] = []any{t.At, t.Processing}
	}
	out := map[string]any{"state": st, "timers": timers}
	if ks.Join != nil {
		out["join"] = encodeJoin(ks.Join)
	}
	return connectors.AppendValue(dst, out), nil
}

// DecodeKeyState reads what EncodeKeyState wrote into this runtime.
func (rt *Runtime) DecodeKeyState(b []byte) (*KeyState, error) {
	v, err := rt.dp.ParseBytes(b)
	if err != nil {
		return nil, fmt.Errorf("checkpointed key state: %w", err)
	}
	ks := rt.NewKeyState()
	if st := v.Get("state"); st != nil {
		ks.state = jsonToLua(rt.sb.L, st)
	}
	if j := v.Get("join"); j != nil {
		if ks.Join, err = decodeJoin(j); err != nil {
			return nil, err
		}
	}
	if tm := v.GetObject("timers"); tm != nil {
		tm.Visit(func(k []byte, x *fastjson.Value) {
			pair := x.GetArray()
			if len(pair) == 2 {
				ks.Timers[string(k)] = Timer{At: pair[0].GetInt64(), Processing: pair[1].GetBool()}
			}
		})
	}
	return ks, nil
}
