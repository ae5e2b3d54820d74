package scripting

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// installPatterns replaces string.find, match, gmatch and gsub with ones
// built on eddy's matcher, which the call's limits and Interrupt stop, and
// whose gsub counts the bytes it builds against the memory limit.
func (s *sandbox) installPatterns(str *lua.LTable) {
	L := s.L
	L.SetField(str, "find", L.NewFunction(func(L *lua.LState) int { return s.find(L, true) }))
	L.SetField(str, "match", L.NewFunction(func(L *lua.LState) int { return s.find(L, false) }))
	L.SetField(str, "gmatch", L.NewFunction(s.gmatch))
	L.SetField(str, "gsub", L.NewFunction(s.gsub))
}

func (s *sandbox) newMatcher(src, pat string) *matcher {
	return &matcher{src: src, pat: pat, stopped: s.ctx.Load().stopped}
}

// matchDone raises a pattern error, or the call's stop when the matcher
// was stopped.
func (s *sandbox) matchDone(L *lua.LState, fn string, stop bool, err error) {
	if stop {
		s.checkStop(L)
	}
	if err != nil {
		L.RaiseError("%s: %v", fn, err)
	}
}

// posRelative turns a possibly negative string position into a positive
// one, as Lua 5.1's string functions do.
func posRelative(pos, n int) int {
	if pos < 0 {
		pos += n + 1
	}
	return max(pos, 0)
}

// find is string.find (find set) and string.match.
func (s *sandbox) find(L *lua.LState, find bool) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	init := min(posRelative(L.OptInt(3, 1), len(src))-1, len(src))
	init = max(init, 0)
	if find && (L.ToBool(4) || !strings.ContainsAny(pat, "^$*+?.([%-")) {
		if i := strings.Index(src[init:], pat); i >= 0 {
			L.Push(lua.LNumber(init + i + 1))
			L.Push(lua.LNumber(init + i + len(pat)))
			return 2
		}
		L.Push(lua.LNil)
		return 1
	}
	anchor := strings.HasPrefix(pat, "^")
	if anchor {
		pat = pat[1:]
	}
	m := s.newMatcher(src, pat)
	n := 0
	stop, err := m.run(func() {
		for at := init; ; at++ {
			m.reset()
			if e := m.match(at, 0); e != -1 {
				if find {
					L.Push(lua.LNumber(at + 1))
					L.Push(lua.LNumber(e))
					n = 2 + m.push(L, at, e, false)
				} else {
					n = m.push(L, at, e, true)
				}
				return
			}
			if anchor || at >= len(src) {
				break
			}
		}
		L.Push(lua.LNil)
		n = 1
	})
	name := "string.match"
	if find {
		name = "string.find"
	}
	s.matchDone(L, name, stop, err)
	return n
}

// push pushes a match's captures (or the whole match, with whole set when
// it has none) and says how many.
func (m *matcher) push(L *lua.LState, s, e int, whole bool) int {
	n := m.captures(whole)
	for i := 0; i < n; i++ {
		L.Push(m.captureLValue(i, s, e))
	}
	return n
}

func (m *matcher) captureLValue(i, s, e int) lua.LValue {
	str, pos, isPos := m.captureValue(i, s, e)
	if isPos {
		return lua.LNumber(pos)
	}
	return lua.LString(str)
}

func (s *sandbox) gmatch(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	at := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		m := s.newMatcher(src, pat)
		n := 0
		stop, err := m.run(func() {
			for ; at <= len(src); at++ {
				m.reset()
				if e := m.match(at, 0); e != -1 {
					start := at
					at = e
					if e == start {
						at++ // an empty match: go on after it
					}
					n = m.push(L, start, e, true)
					return
				}
			}
		})
		s.matchDone(L, "string.gmatch", stop, err)
		return n
	}))
	return 1
}

func (s *sandbox) gsub(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	repl := L.Get(3)
	switch repl.Type() {
	case lua.LTString, lua.LTNumber, lua.LTTable, lua.LTFunction:
	default:
		L.ArgError(3, "string/function/table expected")
	}
	maxN := L.OptInt(4, len(src)+1)
	anchor := strings.HasPrefix(pat, "^")
	if anchor {
		pat = pat[1:]
	}
	m := s.newMatcher(src, pat)
	out := s.newBuilder(L, "string.gsub")
	n := 0
	stop, err := m.run(func() {
		at := 0
		for n < maxN {
			m.reset()
			e := m.match(at, 0)
			if e != -1 {
				n++
				s.replace(L, m, out, repl, at, e)
			}
			switch {
			case e != -1 && e > at:
				at = e
			case at < len(src):
				out.add(src[at : at+1])
				at++
			default:
				at = len(src) + 1
			}
			if at > len(src) || anchor {
				break
			}
		}
		if at < len(src) {
			out.add(src[at:])
		}
	})
	s.matchDone(L, "string.gsub", stop, err)
	L.Push(out.lstring())
	L.Push(lua.LNumber(n))
	return 2
}

// replace adds the replacement of the match src[at:e] to out.
func (s *sandbox) replace(L *lua.LState, m *matcher, out *builder, repl lua.LValue, at, e int) {
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString, lua.LNumber:
		addTemplate(m, out, lua.LVAsString(r), at, e)
		return
	case *lua.LTable:
		v = L.GetTable(r, m.captureLValue(0, at, e))
	case *lua.LFunction:
		n := m.push(L, at, e, true)
		fn := r
		L.Insert(fn, L.GetTop()-n+1)
		L.Call(n, 1)
		v = L.Get(-1)
		L.Pop(1)
	}
	switch v := v.(type) {
	case *lua.LNilType:
		out.add(m.src[at:e])
	case lua.LBool:
		if v {
			L.RaiseError("string.gsub: invalid replacement value (a boolean)")
		}
		out.add(m.src[at:e])
	case lua.LString, lua.LNumber:
		out.add(lua.LVAsString(v))
	default:
		L.RaiseError("string.gsub: invalid replacement value (a %s)", v.Type())
	}
}

// addTemplate adds a replacement string, its %0-%9 standing for captures
// and %% for %.
func addTemplate(m *matcher, out *builder, t string, at, e int) {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c != '%' || i+1 == len(t) {
			out.add(t[i : i+1])
			continue
		}
		i++
		c = t[i]
		switch {
		case c == '0':
			out.add(m.src[at:e])
		case c >= '1' && c <= '9':
			str, pos, isPos := m.captureValue(int(c-'1'), at, e)
			if isPos {
				str = lua.LVAsString(lua.LNumber(pos))
			}
			out.add(str)
		default:
			out.add(t[i : i+1])
		}
	}
}
