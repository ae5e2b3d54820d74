package scripting

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/eddy-stream/eddy/connectors"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"
)

// specKind is the field that marks tables made by the eddy.* constructors.
const specKind = "__eddy"

func (s *sandbox) installJSON() {
	L := s.L
	mod := L.NewTable()
	var p fastjson.Parser
	L.SetField(mod, "decode", L.NewFunction(func(L *lua.LState) int {
		text := L.CheckString(1)
		size := jsonDecodeSize(text)
		s.reserve(L, "json.decode", size)
		parser := &p
		if size > reusedParserBytes {
			// a parser keeps what it allocated: a big document's goes with it
			parser = &fastjson.Parser{}
		}
		v, err := parser.Parse(text)
		if err != nil {
			L.RaiseError("json.decode: %s", shortJSONError(err))
		}
		L.Push(jsonToLua(L, v))
		return 1
	}))
	L.SetField(mod, "encode", L.NewFunction(func(L *lua.LState) int {
		arg := L.CheckAny(1)
		// the Go copy and the text: about twice what the value holds
		s.reserve(L, "json.encode", 2*s.sizeOf(arg))
		v, err := toGo(arg)
		if err != nil {
			L.RaiseError("json.encode: %v", err)
		}
		L.Push(lua.LString(connectors.AppendValue(nil, v)))
		return 1
	}))
	L.SetGlobal("json", mod)
}

// reusedParserBytes is the largest decode the sandbox's own JSON parser
// serves; a bigger one gets a parser of its own, dropped after.
const reusedParserBytes = 1 << 20

// jsonDecodeSize bounds what decoding s costs, before parsing it: its text
// plus, for every value it may hold (each comma, colon and bracket may
// start one), fastjson's node and the Lua value.
func jsonDecodeSize(s string) int64 {
	values := int64(1)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',', ':', '[', '{':
			values++
		}
	}
	return int64(len(s)) + values*(jsonValueBytes+entryBytes)
}

// jsonValueBytes is fastjson's size of one parsed value.
const jsonValueBytes = 64

// shortJSONError keeps fastjson's message but drops the echo of the whole
// input it appends, which for a long line buries the reason.
func shortJSONError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "; unparsed tail"); i > 0 {
		msg = msg[:i]
	}
	// a deep document's error repeats "cannot parse array: cannot parse
	// array value: " once a level before the cause
	if i := strings.Index(msg, "too big depth"); i > 0 {
		return "cannot parse JSON: " + msg[i:]
	}
	if len(msg) > 200 {
		return msg[:200] + "…"
	}
	return msg
}

var layouts = map[string]string{
	"rfc3339":     time.RFC3339,
	"rfc3339nano": time.RFC3339Nano,
	"datetime":    time.DateTime,
	"date":        time.DateOnly,
	"rfc1123":     time.RFC1123,
}

func layoutArg(L *lua.LState, n int) string {
	l := L.OptString(n, "rfc3339")
	if named, ok := layouts[strings.ToLower(l)]; ok {
		return named
	}
	return l
}

// maxTimeText bounds time.parse's input and the layouts: no time or
// layout is longer, and Go's error for a long one quotes it several times.
const maxTimeText = 256

// timeText is argument n of a time function, refused when too long to be
// a time or a layout.
func timeText(L *lua.LState, fn string, n int, s string) string {
	if len(s) > maxTimeText {
		L.ArgError(n, fmt.Sprintf("%s: a text of %d bytes is longer than any time or layout (at most %d)", fn, len(s), maxTimeText))
	}
	return s
}

// parseSeconds is time.parse: s in layout, as Unix seconds with fraction.
// (The declarative eddy.time_parse shares it.)
func parseSeconds(s, layout string) (float64, error) {
	t, err := time.Parse(layout, s)
	if err != nil {
		return 0, err
	}
	return float64(t.UnixNano()) / 1e9, nil
}

// formatSeconds is time.format of finite Unix seconds, in UTC.
func formatSeconds(secs float64, layout string) string {
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)).UTC().Format(layout)
}

func installTime(L *lua.LState) {
	mod := L.NewTable()
	// time.parse(s [, layout]) returns Unix seconds (with fraction). Layouts
	// are Go layouts or the names rfc3339 (default), rfc3339nano, datetime,
	// date, rfc1123.
	L.SetField(mod, "parse", L.NewFunction(func(L *lua.LState) int {
		s := timeText(L, "time.parse", 1, L.CheckString(1))
		secs, err := parseSeconds(s, timeText(L, "time.parse", 2, layoutArg(L, 2)))
		if err != nil {
			L.RaiseError("time.parse: %v", err)
		}
		L.Push(lua.LNumber(secs))
		return 1
	}))
	// time.format(seconds [, layout]) formats Unix seconds in UTC.
	L.SetField(mod, "format", L.NewFunction(func(L *lua.LState) int {
		secs := float64(L.CheckNumber(1))
		if math.IsNaN(secs) || math.IsInf(secs, 0) {
			L.ArgError(1, "not a finite number")
		}
		L.Push(lua.LString(formatSeconds(secs, timeText(L, "time.format", 2, layoutArg(L, 2)))))
		return 1
	}))
	L.SetField(mod, "now", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LNumber(float64(time.Now().UnixNano()) / 1e9))
		return 1
	}))
	L.SetGlobal("time", mod)
}

// installEddy adds the constructors a pipeline table uses: parse formats
// (eddy.json, eddy.csv, eddy.lines) and built-in aggregates.
func installEddy(L *lua.LState) {
	mod := L.NewTable()
	spec := func(kind string, set func(L *lua.LState, t *lua.LTable)) *lua.LFunction {
		fn := L.NewFunction(func(L *lua.LState) int {
			t := L.NewTable()
			t.RawSetString(specKind, lua.LString(kind))
			set(L, t)
			L.Push(t)
			return 1
		})
		// Marked, so that a constructor given where its result belongs
		// (parse = eddy.json) is refused naming it (constructorOf).
		fn.Env = L.NewTable()
		fn.Env.RawSetString(specKind, lua.LString(kind))
		return fn
	}
	L.SetField(mod, "json", spec("json", func(L *lua.LState, t *lua.LTable) {
		t.RawSetString("fields", L.OptTable(1, L.NewTable()))
		t.RawSetString("options", L.OptTable(2, L.NewTable()))
	}))
	L.SetField(mod, "csv", spec("csv", func(L *lua.LState, t *lua.LTable) {
		t.RawSetString("options", L.CheckTable(1))
	}))
	L.SetField(mod, "lines", spec("lines", func(L *lua.LState, t *lua.LTable) {}))
	L.SetField(mod, "count", spec("count", func(L *lua.LState, t *lua.LTable) {}))
	for _, fn := range []string{"sum", "min", "max", "avg", "count_distinct"} {
		L.SetField(mod, fn, spec(fn, func(L *lua.LState, t *lua.LTable) {
			t.RawSetString("field", lua.LString(L.CheckString(1)))
		}))
	}
	L.SetField(mod, "top", spec("top", func(L *lua.LState, t *lua.LTable) {
		t.RawSetString("n", lua.LNumber(L.CheckInt(1)))
		t.RawSetString("field", lua.LString(L.CheckString(2)))
		if L.GetTop() >= 3 {
			t.RawSetString("by", lua.LString(L.CheckString(3)))
		}
	}))
	L.SetField(mod, "tumbling", spec("tumbling", func(L *lua.LState, t *lua.LTable) {
		t.RawSetString("size", L.CheckAny(1))
	}))
	L.SetField(mod, "hopping", spec("hopping", func(L *lua.LState, t *lua.LTable) {
		t.RawSetString("size", L.CheckAny(1))
		t.RawSetString("slide", L.CheckAny(2))
	}))
	L.SetField(mod, "session", spec("session", func(L *lua.LState, t *lua.LTable) {
		t.RawSetString("gap", L.CheckAny(1))
	}))
	L.SetField(mod, "source_time", spec("source_time", func(L *lua.LState, t *lua.LTable) {}))
	installPredicates(L, mod)
	installMap(L, mod)
	installJoin(L, mod)
	installLookupStep(L, mod)
	L.SetGlobal("eddy", mod)
}

// constructorOf tells whether fn is one of eddy's constructors (eddy.json,
// eddy.sum, …) rather than the value it makes, and which.
func constructorOf(fn *lua.LFunction) (string, bool) {
	if !fn.IsG || fn.Env == nil {
		return "", false
	}
	kind, ok := fn.Env.RawGetString(specKind).(lua.LString)
	return string(kind), ok
}
