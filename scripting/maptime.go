package scripting

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// timeConv is eddy.time_parse(x [, layout]), which is time.parse(r.x,
// layout): a time text to Unix seconds; or eddy.time_format(x [, layout]),
// which is time.format(r.x, layout): Unix seconds to text in UTC. Both
// share time.parse's and time.format's code, so they agree to the bit.
type timeConv struct {
	format       bool
	x            expr
	name, layout string // as written, and as Go's time package takes it
}

func (e timeConv) eval(r fields) (lua.LValue, error) {
	v, err := e.x.eval(r)
	if err != nil {
		return nil, err
	}
	if e.format {
		secs, ok := arithOperand(v)
		if !ok || math.IsNaN(float64(secs)) || math.IsInf(float64(secs), 0) {
			return nil, fmt.Errorf("%s: %s is %s, want finite Unix seconds", e.describe(), e.x.describe(), describeValue(v))
		}
		return lua.LString(formatSeconds(float64(secs), e.layout)), nil
	}
	if !lua.LVCanConvToString(v) {
		return nil, fmt.Errorf("%s: %s is a %s, want a time text", e.describe(), e.x.describe(), v.Type())
	}
	s := lua.LVAsString(v)
	if len(s) > maxTimeText {
		return nil, fmt.Errorf("%s: a text of %d bytes is longer than any time (at most %d)", e.describe(), len(s), maxTimeText)
	}
	secs, err := parseSeconds(s, e.layout)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", e.describe(), err)
	}
	return lua.LNumber(secs), nil
}

func (e timeConv) describe() string {
	fn := "time_parse"
	if e.format {
		fn = "time_format"
	}
	return fn + "(" + e.x.describe() + ", " + strconv.Quote(e.name) + ")"
}

func (e timeConv) reads(f func(string)) { e.x.reads(f) }

func installMapTime(L *lua.LState, mod *lua.LTable) {
	for _, kind := range []string{"time_parse", "time_format"} {
		L.SetField(mod, kind, L.NewFunction(func(L *lua.LState) int {
			t := L.NewTable()
			t.RawSetString(specKind, lua.LString(kind))
			t.RawSetString("x", L.CheckAny(1))
			t.RawSetString("layout", lua.LString(L.OptString(2, "rfc3339")))
			L.Push(t)
			return 1
		}))
	}
}

func readTimeConv(kind string, t *lua.LTable) (expr, error) {
	x, err := readExpr(t.RawGetString("x"))
	if err != nil {
		return nil, fmt.Errorf("eddy.%s: %w", kind, err)
	}
	name := lua.LVAsString(t.RawGetString("layout"))
	if len(name) > maxTimeText {
		return nil, fmt.Errorf("eddy.%s: a layout of %d bytes is longer than any (at most %d)", kind, len(name), maxTimeText)
	}
	layout := name
	if named, ok := layouts[strings.ToLower(name)]; ok {
		layout = named
	}
	return timeConv{format: kind == "time_format", x: x, name: name, layout: layout}, nil
}
