package scripting

import (
	"math"

	lua "github.com/yuin/gopher-lua"
)

// The value caches: a runtime hands the same field values out again and
// again (a device name, a port, a sensor id), and making each a Lua or Go
// value anew costs two allocations a string (its bytes, and the interface
// that holds them) and one a number. A field's cache keeps the values of
// the texts it has seen, looked up by the record's bytes without copying
// them, so a value seen before costs a map lookup and no allocation. The
// values are immutable, so sharing them between records changes nothing
// but the allocations; a text not in the cache is converted as before. A
// field whose values rarely repeat (a random port, a unique id) turns its
// cache off once it is full, and then costs what it did before.

// valueCacheMax bounds each map of a field's cache: past it, new texts
// are converted without being kept (the values seen first stay, which for
// the skewed values of most streams are the frequent ones). It holds the
// keys of ten thousand devices or sensors (at 1<<13, a fifth of such a
// stream's keys missed it and cost two allocations each); a full map of
// short texts is about a MiB.
const valueCacheMax = 1 << 14

// cacheJudge is how many lookups of a full cache decide whether it helps:
// it stays on while at least half of them hit.
const cacheJudge = 1 << 12

// valueCache is one field's cache; its maps are made on first use.
type valueCache struct {
	luaStrings, luaNumbers map[string]lua.LValue
	goStrings              map[string]any
	goNumbers              *[numberSlots]numberSlot // by value: see goNumber
	tries, hits            int                      // lookups and hits since the last judgement of a full map
	off                    bool                     // the field's values rarely repeat: no lookups
}

// fieldCache is the cache of the record field name: one per parsed field,
// and one shared by the fields a map makes.
func (rt *Runtime) fieldCache(name string) *valueCache {
	if len(rt.caches) != len(rt.names)+1 {
		rt.caches = make([]valueCache, len(rt.names)+1)
	}
	if i := fieldIndex(rt.names, name); i >= 0 {
		return &rt.caches[i]
	}
	return &rt.caches[len(rt.names)]
}

// luaString is lua.LString(raw) as an LValue.
func (c *valueCache) luaString(raw []byte) lua.LValue {
	if !c.off {
		v, ok := c.luaStrings[string(raw)]
		if c.judge(ok, len(c.luaStrings)) {
			return v
		}
	}
	s := string(raw)
	v := lua.LValue(lua.LString(s))
	c.luaStrings = keep(c, c.luaStrings, s, v)
	return v
}

// luaNumber is the Lua number a scanned number's text raw reads as.
func (c *valueCache) luaNumber(raw []byte) lua.LValue {
	if !c.off {
		v, ok := c.luaNumbers[string(raw)]
		if c.judge(ok, len(c.luaNumbers)) {
			return v
		}
	}
	v := lua.LValue(lua.LNumber(parseNumber(raw)))
	c.luaNumbers = keep(c, c.luaNumbers, string(raw), v)
	return v
}

// goString is the string s as an any.
func (c *valueCache) goString(s string) any {
	if !c.off {
		v, ok := c.goStrings[s]
		if c.judge(ok, len(c.goStrings)) {
			return v
		}
	}
	v := any(s)
	c.goStrings = keep(c, c.goStrings, s, v)
	return v
}

// goBytes is string(raw) as an any.
func (c *valueCache) goBytes(raw []byte) any {
	if !c.off {
		v, ok := c.goStrings[string(raw)]
		if c.judge(ok, len(c.goStrings)) {
			return v
		}
	}
	s := string(raw)
	v := any(s)
	c.goStrings = keep(c, c.goStrings, s, v)
	return v
}

// goNumber is number() of a scanned number's text raw. Go numbers are
// kept by value, not by text, in a table of numberSlots indexed by the
// value's bits: a number's text parses in about the time a map takes to
// hash it, and the table is one read of a small array where the map's
// lookup read its control word, its slot and the key's bytes (a fifth of
// a parse worker's CPU in bench-windows, where temperatures repeat). A
// value in its slot is the one number() gives for those bits; a value
// whose slot another holds is made anew (an allocation, as with no
// cache) and takes the slot.
func (c *valueCache) goNumber(raw []byte) any {
	f := parseNumber(raw)
	if c.goNumbers == nil {
		c.goNumbers = new([numberSlots]numberSlot)
	}
	bits := math.Float64bits(f)
	s := &c.goNumbers[bits*0x9e3779b97f4a7c15>>(64-numberSlotBits)]
	if s.bits == bits && s.v != nil {
		return s.v
	}
	v := number(f)
	*s = numberSlot{bits: bits, v: v}
	return v
}

// numberSlots is how many numbers a field's cache holds: 96 KiB, less
// than its map of texts held when full.
const (
	numberSlotBits = 12
	numberSlots    = 1 << numberSlotBits
)

type numberSlot struct {
	bits uint64 // math.Float64bits of the value
	v    any    // number() of it; nil: the slot is empty
}

// judge passes on a lookup's hit, and turns the cache off when a full
// map's lookups hit less than half of the time.
func (c *valueCache) judge(hit bool, size int) bool {
	if size < valueCacheMax {
		return hit
	}
	c.tries++
	if hit {
		c.hits++
	}
	if c.tries == cacheJudge {
		c.off = c.hits < cacheJudge/2
		c.tries, c.hits = 0, 0
	}
	return hit
}

// keep adds k to m while m is under valueCacheMax and the cache is on.
func keep[V any](c *valueCache, m map[string]V, k string, v V) map[string]V {
	if c.off {
		return m
	}
	if m == nil {
		m = map[string]V{}
	}
	if len(m) < valueCacheMax {
		m[k] = v
	}
	return m
}
