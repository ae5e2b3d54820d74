package scripting

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// concatName is the name the compiled chunk reads the checked `..` from:
// not a valid Lua identifier, so no script can name it by accident.
const concatName = "(concat)"

// guard replaces every library function that can build a large value in
// one call with one that counts it against the state's memory limit first,
// and the pattern functions with ones the call's limits can stop.
func (s *sandbox) guard() {
	L := s.L
	str := L.GetGlobal("string").(*lua.LTable)
	sized := func(name string, size func(L *lua.LState) int64, orig lua.LValue) {
		L.SetField(str, name, L.NewFunction(func(L *lua.LState) int {
			s.reserve(L, "string."+name, size(L))
			return callOrig(L, orig)
		}))
	}
	for _, name := range []string{"upper", "lower", "reverse"} {
		sized(name, func(L *lua.LState) int64 { return int64(len(L.CheckString(1))) }, L.GetField(str, name))
	}
	sized("char", func(L *lua.LState) int64 { return int64(L.GetTop()) }, L.GetField(str, "char"))
	sized("format", formatBound, L.GetField(str, "format"))
	L.SetField(str, "rep", L.NewFunction(s.rep))
	byteFn := L.GetField(str, "byte")
	L.SetField(str, "byte", L.NewFunction(func(L *lua.LState) int {
		str := L.CheckString(1)
		i := posRelative(L.OptInt(2, 1), len(str))
		j := min(posRelative(L.OptInt(3, i), len(str)), len(str))
		if n := int64(j) - int64(max(i, 1)) + 1; n > maxResults {
			L.RaiseError("string.byte: %d results is over the limit of %d values a call may return", n, maxResults)
		}
		top := L.GetTop()
		L.Push(byteFn)
		for k := 1; k <= top; k++ {
			L.Push(L.Get(k))
		}
		L.Call(top, lua.MultRet)
		return L.GetTop() - top
	}))
	s.installPatterns(str)

	tab := L.GetGlobal("table").(*lua.LTable)
	concat := L.GetField(tab, "concat")
	L.SetField(tab, "concat", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		sep := L.OptString(2, "")
		var total int64
		t.ForEach(func(_, v lua.LValue) {
			if v.Type() == lua.LTString || v.Type() == lua.LTNumber {
				total += int64(len(lua.LVAsString(v)) + len(sep))
			}
		})
		s.reserve(L, "table.concat", total)
		return callOrig(L, concat)
	}))
	L.SetGlobal("unpack", L.NewFunction(s.unpack))
	L.SetGlobal(concatName, L.NewFunction(s.concat))
	L.SetGlobal("loadstring", L.NewFunction(s.loadstring))
	L.SetGlobal("load", L.NewFunction(s.load))
}

// callOrig calls a library function with the arguments of the running one
// and returns its one result.
func callOrig(L *lua.LState, fn lua.LValue) int {
	top := L.GetTop()
	L.Push(fn)
	for i := 1; i <= top; i++ {
		L.Push(L.Get(i))
	}
	L.Call(top, 1)
	return 1
}

func (s *sandbox) rep(L *lua.LState) int {
	str := L.CheckString(1)
	n := L.CheckInt(2)
	sep := L.OptString(3, "")
	if n <= 0 {
		L.Push(lua.LString(""))
		return 1
	}
	size := int64(len(str)+len(sep))*int64(n) - int64(len(sep))
	if size < 0 || (len(str)+len(sep) > 0 && size/int64(len(str)+len(sep)) > int64(n)) {
		size = 1 << 62 // overflowed
	}
	s.reserve(L, "string.rep", size)
	if sep == "" {
		L.Push(lua.LString(strings.Repeat(str, n)))
	} else {
		L.Push(lua.LString(strings.Repeat(str+sep, n-1) + str))
	}
	return 1
}

// formatBound is the most string.format can build from its arguments:
// the format, each directive's width and precision, and its argument as a
// string (%q may escape each byte to four).
func formatBound(L *lua.LState) int64 {
	f := L.CheckString(1)
	bound := int64(len(f))
	arg := 2
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			continue
		}
		var width, prec int64
		num := &width
		for ; i < len(f) && strings.IndexByte("-+ #0.0123456789", f[i]) >= 0; i++ {
			switch c := f[i]; {
			case c == '.':
				num = &prec
			case c >= '0' && c <= '9':
				*num = min(*num*10+int64(c-'0'), 1<<40)
			}
		}
		bound += width + prec + 32
		if i < len(f) && (f[i] == 's' || f[i] == 'q' || f[i] == 'v') && arg <= L.GetTop() {
			n := int64(len(L.ToStringMeta(L.Get(arg)).String()))
			if f[i] == 'q' {
				n *= 4
			}
			bound += n
		}
		arg++
	}
	return bound
}

// unpack is Lua's, refusing a range larger than the stack can hold before
// pushing anything.
func (s *sandbox) unpack(L *lua.LState) int {
	t := L.CheckTable(1)
	i := L.OptInt(2, 1)
	j := L.OptInt(3, t.Len())
	if i > j {
		return 0
	}
	n := int64(j) - int64(i) + 1
	if n > maxResults {
		L.RaiseError("unpack: %d results is over the limit of %d values a call may return", n, maxResults)
	}
	s.reserve(L, "unpack", n*slotBytes)
	for k := i; k <= j; k++ {
		L.Push(t.RawGetInt(k))
	}
	return int(n)
}

// maxResults is how many values one call may return, Lua 5.1's stack
// limit (LUAI_MAXCSTACK): gopher-lua grows its stack a few slots at a
// time, so a million values took seconds of copying.
const maxResults = 8000

// concat is the `..` operator: every concatenation in a compiled script
// calls it (see rewriteConcat) so the result's size is checked before it
// is built. It takes the operands of a whole chain, a .. b .. c.
func (s *sandbox) concat(L *lua.LState) int {
	n := L.GetTop()
	var total int64
	plain := true
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case lua.LString:
			total += int64(len(v))
		case lua.LNumber:
			total += 24
		default:
			plain = false
		}
	}
	if plain {
		s.reserve(L, "string concat", total)
		var b strings.Builder
		b.Grow(int(total))
		for i := 1; i <= n; i++ {
			b.WriteString(lua.LVAsString(L.Get(i)))
		}
		L.Push(lua.LString(b.String()))
		return 1
	}
	// Right to left, as Lua does, for the __concat metamethods.
	rhs := L.Get(n)
	for i := n - 1; i >= 1; i-- {
		rhs = s.concat2(L, L.Get(i), rhs)
	}
	L.Push(rhs)
	return 1
}

func (s *sandbox) concat2(L *lua.LState, a, b lua.LValue) lua.LValue {
	if lua.LVCanConvToString(a) && lua.LVCanConvToString(b) {
		x, y := lua.LVAsString(a), lua.LVAsString(b)
		s.reserve(L, "string concat", int64(len(x))+int64(len(y)))
		return lua.LString(x + y)
	}
	mm := L.GetMetaField(a, "__concat")
	if mm == lua.LNil {
		mm = L.GetMetaField(b, "__concat")
	}
	if mm.Type() != lua.LTFunction {
		L.RaiseError("cannot perform concat operation between %v and %v", a.Type(), b.Type())
	}
	L.Push(mm)
	L.Push(a)
	L.Push(b)
	L.Call(2, 1)
	v := L.Get(-1)
	L.Pop(1)
	return v
}

// loadstring compiles a chunk like the pipeline itself, with its `..`
// checked.
func (s *sandbox) loadstring(L *lua.LState) int {
	src := L.CheckString(1)
	return s.compileChunk(L, src, L.OptString(2, "<string>"))
}

// load is Lua 5.1's load(func [, chunkname]); a string works too.
func (s *sandbox) load(L *lua.LState) int {
	if src, ok := L.Get(1).(lua.LString); ok {
		return s.compileChunk(L, string(src), L.OptString(2, "=(load)"))
	}
	fn := L.CheckFunction(1)
	name := L.OptString(2, "=(load)")
	b := s.newBuilder(L, "load")
	for {
		L.Push(fn)
		L.Call(0, 1)
		v := L.Get(-1)
		L.Pop(1)
		str, ok := v.(lua.LString)
		if v == lua.LNil || (ok && str == "") {
			break
		}
		if !ok {
			L.Push(lua.LNil)
			L.Push(lua.LString("reader function must return a string"))
			return 2
		}
		b.add(string(str))
	}
	return s.compileChunk(L, string(b.lstring()), name)
}

// compileBytesPerSourceByte is what parsing and compiling cost in memory
// per byte of source, roughly, for loadstring's check.
const compileBytesPerSourceByte = 16

func (s *sandbox) compileChunk(L *lua.LState, src, name string) int {
	s.reserve(L, "loadstring", int64(len(src))*compileBytesPerSourceByte)
	proto, err := compile([]byte(src), name)
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(L.NewFunctionFromProto(proto))
	return 1
}

// compile parses a chunk, routes its `..` through the checked concat and
// compiles it.
func compile(src []byte, name string) (*lua.FunctionProto, error) {
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		return nil, errorString(name + ": syntax error: " + strings.TrimRightFunc(err.Error(), unicode.IsSpace))
	}
	proto, err := lua.Compile(rewriteConcat(chunk), name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return proto, nil
}

// builder builds a string a byte count at a time, each piece counted
// against the memory limit before it is added.
type builder struct {
	s    *sandbox
	L    *lua.LState
	what string
	b    []byte
}

func (s *sandbox) newBuilder(L *lua.LState, what string) *builder {
	return &builder{s: s, L: L, what: what}
}

func (b *builder) add(x string) {
	if !b.s.fits(b.L, int64(len(x)), int64(len(b.b))) {
		b.s.memoryFail(b.L, b.what+" result", int64(len(b.b))+int64(len(x)), int64(len(b.b)))
	}
	b.b = append(b.b, x...)
}

// lstring is the built string; the builder must not be used after.
func (b *builder) lstring() lua.LString {
	return lua.LString(unsafe.String(unsafe.SliceData(b.b), len(b.b)))
}
