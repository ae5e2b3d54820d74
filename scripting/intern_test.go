package scripting

import (
	"strconv"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// A cache gives every text its own value, whether it hits, misses or has
// turned itself off; it turns off only for a field whose values rarely
// repeat once it is full.
func TestValueCache(t *testing.T) {
	var repeats, diverse valueCache
	for i := range valueCacheMax + 4*cacheJudge {
		s := strconv.Itoa(i % 100)
		if got := repeats.luaString([]byte(s)); got != lua.LString(s) {
			t.Fatalf("luaString(%q) = %v", s, got)
		}
		if got := repeats.goNumber([]byte(s)); got != int64(i%100) {
			t.Fatalf("goNumber(%q) = %#v", s, got)
		}
		d := strconv.Itoa(i)
		if got := diverse.goBytes([]byte(d)); got != d {
			t.Fatalf("goBytes(%q) = %#v", d, got)
		}
		if got := diverse.luaNumber([]byte(d)); got != lua.LNumber(i) {
			t.Fatalf("luaNumber(%q) = %v", d, got)
		}
	}
	if repeats.off {
		t.Error("the cache of 100 repeating values turned off")
	}
	if !diverse.off {
		t.Error("the cache of values that never repeat stayed on")
	}
	if n := len(diverse.goStrings); n != valueCacheMax {
		t.Errorf("the full cache holds %d values, want %d", n, valueCacheMax)
	}
}

// goNumber keeps numbers by value: texts of one value give it (an int64
// when integral, as number does), and of many more values than the cache
// holds each gives its own, on every pass.
func TestGoNumberByValue(t *testing.T) {
	var c valueCache
	for _, s := range []string{"21.5", "21.50", "2.15e1", "215e-1"} {
		if got := c.goNumber([]byte(s)); got != 21.5 {
			t.Fatalf("goNumber(%q) = %#v, want 21.5", s, got)
		}
	}
	for _, s := range []string{"7", "7.0", "0.7e1"} {
		if got := c.goNumber([]byte(s)); got != int64(7) {
			t.Fatalf("goNumber(%q) = %#v, want int64 7", s, got)
		}
	}
	for pass := range 3 {
		for i := range 4 * numberSlots {
			s := strconv.FormatFloat(float64(i)/100+float64(pass%2), 'f', -1, 64)
			want := number(float64(i)/100 + float64(pass%2))
			if got := c.goNumber([]byte(s)); got != want {
				t.Fatalf("pass %d: goNumber(%q) = %#v, want %#v", pass, s, got, want)
			}
		}
	}
}
