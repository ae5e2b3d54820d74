package scripting

import (
	"fmt"
	"math"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"
)

// maxDepth bounds nesting when converting values, so a table that contains
// itself is an error instead of a stack overflow.
const maxDepth = 64

// toGo converts a Lua value to the Go values rows carry: nil, bool, int64
// (integral numbers), float64, string, []any (tables with keys 1..n) and
// map[string]any.
func toGo(v lua.LValue) (any, error) { return toGoDepth(v, 0) }

func toGoDepth(v lua.LValue, depth int) (any, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(v), nil
	case lua.LNumber:
		return number(float64(v)), nil
	case lua.LString:
		return string(v), nil
	case *lua.LTable:
		if depth >= maxDepth {
			return nil, fmt.Errorf("table nested deeper than %d levels (does it contain itself?)", maxDepth)
		}
		if n := v.Len(); n > 0 && isArray(v, n) {
			out := make([]any, n)
			for i := 1; i <= n; i++ {
				x, err := toGoDepth(v.RawGetInt(i), depth+1)
				if err != nil {
					return nil, err
				}
				out[i-1] = x
			}
			return out, nil
		}
		out := map[string]any{}
		var err error
		v.ForEach(func(k, val lua.LValue) {
			if err != nil {
				return
			}
			var ks string
			switch k := k.(type) {
			case lua.LString:
				ks = string(k)
			case lua.LNumber:
				ks = lua.LVAsString(k)
			default:
				err = fmt.Errorf("table key of type %s, want string or number", k.Type())
				return
			}
			out[ks], err = toGoDepth(val, depth+1)
		})
		return out, err
	default:
		return nil, fmt.Errorf("a %s can't leave the script (only nil, booleans, numbers, strings and tables can)", v.Type())
	}
}

func isArray(t *lua.LTable, n int) bool {
	count := 0
	ok := true
	t.ForEach(func(k, _ lua.LValue) {
		count++
		if _, isNum := k.(lua.LNumber); !isNum {
			ok = false
		}
	})
	return ok && count == n
}

// number keeps integral values as int64 so they print without a decimal
// point and compare exactly.
func number(f float64) any {
	if f == math.Trunc(f) && f >= -(1<<53) && f <= 1<<53 {
		return int64(f)
	}
	return f
}

// toLua converts a Go row value into L.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, x := range v {
			t.Append(toLua(L, x))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, x := range v {
			t.RawSetString(k, toLua(L, x))
		}
		return t
	default:
		return lua.LString(fmt.Sprint(v))
	}
}

// jsonToLua converts a parsed JSON value into L.
func jsonToLua(L *lua.LState, v *fastjson.Value) lua.LValue {
	switch v.Type() {
	case fastjson.TypeNull:
		return lua.LNil
	case fastjson.TypeTrue:
		return lua.LTrue
	case fastjson.TypeFalse:
		return lua.LFalse
	case fastjson.TypeNumber:
		return lua.LNumber(v.GetFloat64())
	case fastjson.TypeString:
		return lua.LString(v.GetStringBytes())
	case fastjson.TypeArray:
		a := v.GetArray()
		t := L.CreateTable(len(a), 0)
		for _, x := range a {
			t.Append(jsonToLua(L, x))
		}
		return t
	case fastjson.TypeObject:
		o := v.GetObject()
		t := L.CreateTable(0, o.Len())
		o.Visit(func(k []byte, x *fastjson.Value) {
			t.RawSetString(string(k), jsonToLua(L, x))
		})
		return t
	}
	return lua.LNil
}

// jsonToGo converts a parsed JSON value to row values.
func jsonToGo(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	case fastjson.TypeNumber:
		return number(v.GetFloat64())
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeArray:
		a := v.GetArray()
		out := make([]any, len(a))
		for i, x := range a {
			out[i] = jsonToGo(x)
		}
		return out
	case fastjson.TypeObject:
		out := map[string]any{}
		v.GetObject().Visit(func(k []byte, x *fastjson.Value) { out[string(k)] = jsonToGo(x) })
		return out
	}
	return nil
}

// typeName names a JSON value's type the way parse errors speak of it.
func typeName(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeNull:
		return "null"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "boolean"
	case fastjson.TypeNumber:
		return "number"
	case fastjson.TypeString:
		return "string"
	case fastjson.TypeArray:
		return "array"
	case fastjson.TypeObject:
		return "object"
	}
	return "unknown"
}
