package scripting

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The expressions of eddy.map (and what a declarative comparison tests):
// field references, constants, arithmetic, concat, lower and upper
// (maptime.go adds the time conversions). Each computes exactly what its
// Lua equivalent computes, errors included.
// expr is one computed field of eddy.map.
type expr interface {
	eval(r fields) (lua.LValue, error)
	describe() string
	reads(f func(string))
}

type fieldRef struct{ name string }

func (e fieldRef) eval(r fields) (lua.LValue, error) { return r.RawGetString(e.name), nil }
func (e fieldRef) describe() string                  { return strconv.Quote(e.name) }
func (e fieldRef) reads(f func(string))              { f(e.name) }

type constant struct{ v lua.LValue }

func (e constant) eval(fields) (lua.LValue, error) { return e.v, nil }
func (e constant) describe() string {
	if _, ok := e.v.(lua.LString); ok {
		return "const(" + describeValue(e.v) + ")" // a bare string names a field
	}
	return describeValue(e.v)
}
func (e constant) reads(func(string)) {}

// arith is + - * / as Lua computes them: on numbers, and on strings Lua
// converts to numbers; anything else is Lua's error.
type arith struct {
	op   string // add, sub, mul, div, mod
	a, b expr
}

func (e arith) eval(r fields) (lua.LValue, error) {
	a, err := e.a.eval(r)
	if err != nil {
		return nil, err
	}
	b, err := e.b.eval(r)
	if err != nil {
		return nil, err
	}
	x, okx := arithOperand(a)
	y, oky := arithOperand(b)
	if !okx || !oky {
		bad, which := a, e.a
		if okx {
			bad, which = b, e.b
		}
		return nil, fmt.Errorf("%s: %s is a %s, want a number", e.describe(), which.describe(), bad.Type())
	}
	switch e.op {
	case "add":
		return x + y, nil
	case "sub":
		return x - y, nil
	case "mul":
		return x * y, nil
	case "mod":
		return luaModulo(x, y), nil
	}
	return x / y, nil
}

func (e arith) describe() string { return e.op + "(" + e.a.describe() + ", " + e.b.describe() + ")" }
func (e arith) reads(f func(string)) {
	e.a.reads(f)
	e.b.reads(f)
}

// luaModulo is Lua's a % b: the remainder takes the divisor's sign.
func luaModulo(a, b lua.LNumber) lua.LNumber {
	v := math.Mod(float64(a), float64(b))
	if b > 0 && v < 0 || b < 0 && v > 0 {
		v += float64(b)
	}
	return lua.LNumber(v)
}

// arithOperand converts v as Lua's arithmetic does: a number, or a string
// holding one (gopher-lua's parseNumber: trimmed, an integer in any Go
// base prefix, else a float).
func arithOperand(v lua.LValue) (lua.LNumber, bool) {
	switch v := v.(type) {
	case lua.LNumber:
		return v, true
	case lua.LString:
		s := strings.Trim(string(v), " \t\n")
		if n, err := strconv.ParseInt(s, 0, 64); err == nil {
			return lua.LNumber(n), true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return lua.LNumber(f), true
		}
	}
	return 0, false
}

// concat is Lua's a .. b .. …: strings and numbers, numbers written as Lua
// writes them.
type concat struct{ parts []expr }

func (e concat) eval(r fields) (lua.LValue, error) {
	var sb strings.Builder
	for _, p := range e.parts {
		v, err := p.eval(r)
		if err != nil {
			return nil, err
		}
		if !lua.LVCanConvToString(v) {
			return nil, fmt.Errorf("%s: %s is a %s, want a string or number", e.describe(), p.describe(), v.Type())
		}
		sb.WriteString(lua.LVAsString(v))
	}
	return lua.LString(sb.String()), nil
}

func (e concat) describe() string {
	parts := make([]string, len(e.parts))
	for i, p := range e.parts {
		parts[i] = p.describe()
	}
	return "concat(" + strings.Join(parts, ", ") + ")"
}

func (e concat) reads(f func(string)) {
	for _, p := range e.parts {
		p.reads(f)
	}
}

// casing is string.lower or string.upper.
type casing struct {
	upper bool
	x     expr
}

func (e casing) eval(r fields) (lua.LValue, error) {
	v, err := e.x.eval(r)
	if err != nil {
		return nil, err
	}
	if !lua.LVCanConvToString(v) {
		return nil, fmt.Errorf("%s: %s is a %s, want a string", e.describe(), e.x.describe(), v.Type())
	}
	if e.upper {
		return lua.LString(strings.ToUpper(lua.LVAsString(v))), nil
	}
	return lua.LString(strings.ToLower(lua.LVAsString(v))), nil
}

func (e casing) describe() string {
	if e.upper {
		return "upper(" + e.x.describe() + ")"
	}
	return "lower(" + e.x.describe() + ")"
}

func (e casing) reads(f func(string)) { e.x.reads(f) }

// readExpr reads one output field of eddy.map: a field name, a constant
// number or boolean, or an eddy.* expression.
func readExpr(v lua.LValue) (expr, error) {
	switch v := v.(type) {
	case lua.LString:
		return fieldRef{string(v)}, nil
	case lua.LNumber, lua.LBool:
		return constant{v}, nil
	case *lua.LTable:
		return readExprSpec(v)
	}
	return nil, fmt.Errorf("want a field name, a number, a boolean or an eddy.* expression, got %s", v.Type())
}

func readExprSpec(t *lua.LTable) (expr, error) {
	kind := lua.LVAsString(t.RawGetString(specKind))
	switch kind {
	case "field":
		return fieldRef{lua.LVAsString(t.RawGetString("name"))}, nil
	case "const":
		switch v := t.RawGetString("value").(type) {
		case lua.LString, lua.LNumber, lua.LBool:
			return constant{v}, nil
		default:
			return nil, fmt.Errorf("eddy.const: want a string, number or boolean, got %s", v.Type())
		}
	case "add", "sub", "mul", "div", "mod":
		a, err := readExpr(t.RawGetString("a"))
		if err != nil {
			return nil, fmt.Errorf("eddy.%s: %w", kind, err)
		}
		b, err := readExpr(t.RawGetString("b"))
		if err != nil {
			return nil, fmt.Errorf("eddy.%s: %w", kind, err)
		}
		return arith{op: kind, a: a, b: b}, nil
	case "concat":
		parts := t.RawGetString("parts").(*lua.LTable)
		var c concat
		for i := 1; i <= parts.Len(); i++ {
			e, err := readExpr(parts.RawGetInt(i))
			if err != nil {
				return nil, fmt.Errorf("eddy.concat: argument %d: %w", i, err)
			}
			c.parts = append(c.parts, e)
		}
		if len(c.parts) == 0 {
			return nil, fmt.Errorf("eddy.concat: want at least one argument")
		}
		return c, nil
	case "time_parse", "time_format":
		return readTimeConv(kind, t)
	case "lower", "upper":
		x, err := readExpr(t.RawGetString("x"))
		if err != nil {
			return nil, fmt.Errorf("eddy.%s: %w", kind, err)
		}
		return casing{upper: kind == "upper", x: x}, nil
	}
	return nil, fmt.Errorf("want a field name, a number, a boolean or an eddy.* expression (field, const, add, sub, mul, div, mod, concat, lower, upper, time_parse, time_format), got a table")
}
