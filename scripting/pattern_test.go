package scripting

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// testSandbox is a sandbox of a pipeline with the given limits, for tests
// that run code in it directly.
func testSandbox(t *testing.T, timeout time.Duration, memory int64) *sandbox {
	t.Helper()
	p := &Pipeline{Script: "t.lua", CallTimeout: timeout, MemoryLimit: memory, logger: slog.Default(), intr: newInterrupts()}
	sb := newSandbox(p)
	t.Cleanup(sb.close)
	return sb
}

// eval runs a chunk in sb and returns its one result as a string.
func eval(sb *sandbox, src string) (string, error) {
	proto, err := compile([]byte(src), "t.lua")
	if err != nil {
		return "", err
	}
	if err := sb.call(sb.L.NewFunctionFromProto(proto), 1); err != nil {
		return "", err
	}
	v := sb.L.Get(-1)
	sb.L.Pop(1)
	return lua.LVAsString(v), nil
}

// results runs expr and lists what it returned, or "error" when it failed:
// the two matchers' messages differ, their outcomes must not.
const results = `
local function show(ok, ...)
	if not ok then return "error" end
	local out = {}
	for i = 1, select("#", ...) do
		local v = select(i, ...)
		out[#out + 1] = type(v) .. ":" .. tostring(v)
	end
	return table.concat(out, " ")
end
local function all(f, s, c)
	local out = {}
	for a, b in f, s, c do out[#out + 1] = tostring(a) .. "/" .. tostring(b) end
	return table.concat(out, ",")
end
return show(pcall(function() return %s end))`

// TestPatternsAsGopherLua compares eddy's matcher with gopher-lua's on
// patterns of every kind.
func TestPatternsAsGopherLua(t *testing.T) {
	exprs := []string{
		`string.find("hello world", "o w")`,
		`string.find("hello world", "o", 6)`,
		`string.find("hello world", "l+")`,
		`string.find("hello", "")`,
		`string.find("hello", "l", -2)`,
		`string.find("a.b", ".", 1, true)`,
		`string.find("hello", "^h")`,
		`string.find("hello", "^e")`,
		`string.find("hello", "o$")`,
		`string.find("hello", "(l)(l)")`,
		`string.find("hello", "()ll()")`,
		`string.match("key = value", "(%w+)%s*=%s*(%w+)")`,
		`string.match("2021-11-10T11:10:17Z", "^(%d+)-(%d+)-(%d+)T")`,
		`string.match("  trim  ", "^%s*(.-)%s*$")`,
		`string.match("[[nested]]", "%[(%b[])%]")`,
		`string.match("abc", "((a)(b))")`,
		`string.match("aaab", "a-b")`,
		`string.match("aaab", "a*")`,
		`string.match("x", "[%a_][%w_]*")`,
		`string.match("a]b", "[]]")`,
		`string.match("a-b", "[a%-]+")`,
		`string.match("f(a(b)c)", "%b()")`,
		`string.match("hello hello", "(h%a+) %1")`,
		`string.match("0x1F", "^0[xX](%x+)$")`,
		`string.match("tab\there", "%c")`,
		`string.match("a,b;c", "[%p]")`,
		`string.match("ABCdef", "%u+")`,
		`string.match("ABCdef", "%l+")`,
		`string.match("ABC def", "%S+$")`,
		`string.match("abc", "[^a]+")`,
		`string.match("a1b2", "[%d]")`,
		`string.match("10.5.3", "(%d+)%.(%d+)")`,
		`string.match("abc", "[a-")`,
		`string.match("abc", "(()")`,
		`string.match("abc", "%1")`,
		`string.match("", ".*")`,
		`all(string.gmatch("one two  three", "%a+"))`,
		`all(string.gmatch("k1=v1, k2=v2", "(%w+)=(%w+)"))`,
		`all(string.gmatch("abc", ""))`,
		`all(string.gmatch("a,b,,c", "([^,]*)"))`,
		`string.gsub("hello world", "o", "0")`,
		`string.gsub("hello world", "o", "0", 1)`,
		`string.gsub("hello world", "(%w+)", "<%1>")`,
		`string.gsub("hello world", "%w+", "%0 %0")`,
		`string.gsub("hello", "", "-")`,
		`string.gsub("abc", "%w", "%%")`,
		`string.gsub("$name is $age", "%$(%w+)", { name = "ann", age = 7 })`,
		`string.gsub("$name is $x", "%$(%w+)", { name = "ann" })`,
		`string.gsub("a b c", "%a", function(c) return c:upper() end)`,
		`string.gsub("a b c", "%a", function(c) if c == "b" then return false end return "x" end)`,
		`string.gsub("abc", "^a", "A")`,
		`string.gsub("aaa", "^a", "A")`,
		`string.gsub("hello", "(l)(l)", "%2%1")`,
		`string.gsub("x = 1, y = 2", "(%w+) = (%w+)", "%2 = %1")`,
		`("%d items"):format(3)`,
		`("Comp364445"):match("^Comp(%d+)$")`,
		`("a.b.c"):gsub("%.", "/")`,
	}
	ref := lua.NewState()
	defer ref.Close()
	sb := testSandbox(t, time.Minute, DefaultMemoryLimit)
	for _, e := range exprs {
		src := strings.Replace(results, "%s", e, 1)
		if err := ref.DoString(src); err != nil {
			t.Fatalf("%s: gopher-lua: %v", e, err)
		}
		want := ref.Get(-1).String()
		ref.Pop(1)
		got, err := eval(sb, src)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		if got != want {
			t.Errorf("%s\n got  %s\n want %s (gopher-lua)", e, got, want)
		}
	}
}

// TestPatternsAsLua51 holds the cases where gopher-lua departs from the
// Lua 5.1 reference manual (and the reference implementation); eddy's
// matcher follows the manual.
func TestPatternsAsLua51(t *testing.T) {
	tests := []struct{ expr, want string }{
		// init past the end is clamped to the end, where "" matches
		{`string.find("hello", "", 10)`, "number:6 number:5"},
		// the frontier sees "\0" before the subject's first character
		{`string.match("THE (quick) fox", "%f[%a]%a+")`, "string:THE"},
		// a failed match returns nil, not nothing
		{`string.match("aaa", "a-b")`, "nil:nil"},
		{`string.match("aaab", "a+?")`, "nil:nil"},
		{`string.match("abc", "%")`, "error"},
	}
	sb := testSandbox(t, time.Minute, DefaultMemoryLimit)
	for _, tc := range tests {
		got, err := eval(sb, strings.Replace(results, "%s", tc.expr, 1))
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got != tc.want {
			t.Errorf("%s = %s, want %s", tc.expr, got, tc.want)
		}
	}
}
