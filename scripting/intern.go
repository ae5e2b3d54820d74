package scripting

import (
	lua "github.com/yuin/gopher-lua"
)

// The value cache: a runtime hands the same field values out again and
// again (a device name, a port, a sensor id), and making each a Lua or Go
// value anew costs two allocations a string (its bytes, and the interface
// that holds them) and one a number. The cache keeps the values of the
// texts it has seen, looked up by the record's bytes without copying
// them, so a value seen before costs a map lookup and no allocation. The
// values are immutable, so sharing them between records changes nothing
// but the allocations; a text not yet cached is converted as before.

// valueCacheMax bounds each of a runtime's caches: past it, new texts are
// converted without being kept (the values seen first stay, which for the
// skewed values of most streams are the frequent ones).
const valueCacheMax = 1 << 14

// valueCache is one runtime's cache; its maps are made on first use.
type valueCache struct {
	luaStrings, luaNumbers map[string]lua.LValue
	goStrings, goNumbers   map[string]any
}

// luaString is lua.LString(raw) as an LValue.
func (c *valueCache) luaString(raw []byte) lua.LValue {
	if v, ok := c.luaStrings[string(raw)]; ok {
		return v
	}
	s := string(raw)
	v := lua.LValue(lua.LString(s))
	c.luaStrings = keep(c.luaStrings, s, v)
	return v
}

// luaNumber is the Lua number a scanned number's text raw reads as.
func (c *valueCache) luaNumber(raw []byte) lua.LValue {
	if v, ok := c.luaNumbers[string(raw)]; ok {
		return v
	}
	v := lua.LValue(lua.LNumber(parseNumber(raw)))
	c.luaNumbers = keep(c.luaNumbers, string(raw), v)
	return v
}

// goString is the string s as an any.
func (c *valueCache) goString(s string) any {
	if v, ok := c.goStrings[s]; ok {
		return v
	}
	v := any(s)
	c.goStrings = keep(c.goStrings, s, v)
	return v
}

// goBytes is string(raw) as an any.
func (c *valueCache) goBytes(raw []byte) any {
	if v, ok := c.goStrings[string(raw)]; ok {
		return v
	}
	return c.goString(string(raw))
}

// goNumber is number() of a scanned number's text raw.
func (c *valueCache) goNumber(raw []byte) any {
	if v, ok := c.goNumbers[string(raw)]; ok {
		return v
	}
	v := number(parseNumber(raw))
	c.goNumbers = keep(c.goNumbers, string(raw), v)
	return v
}

// keep adds k to m while m is under valueCacheMax.
func keep[V any](m map[string]V, k string, v V) map[string]V {
	if m == nil {
		m = map[string]V{}
	}
	if len(m) < valueCacheMax {
		m[k] = v
	}
	return m
}
