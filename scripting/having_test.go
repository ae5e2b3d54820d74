package scripting

import (
	"fmt"
	"math"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
)

// Each declarative having and its Lua function give the same answer on
// the same result rows, including rows holding strings, NaN, nil and
// tables where a number is expected.
func TestDeclarativeHavingEqualsLua(t *testing.T) {
	values := []any{int64(3), int64(1), 2.5, math.NaN(), math.Inf(1), "3", "b", nil, true, []any{int64(1)}, map[string]any{"a": int64(1)}}
	tests := []struct{ decl, lua string }{
		{`eddy.gt("n", 2)`, `row.n > 2`},
		{`eddy.le("n", 2.5)`, `row.n <= 2.5`},
		{`eddy.eq("n", 3)`, `row.n == 3`},
		{`eddy.ne("n", "3")`, `row.n ~= "3"`},
		{`eddy.is_in("n", { 1, "b", true })`, `row.n == 1 or row.n == "b" or row.n == true`},
		{`eddy.has("n")`, `row.n ~= nil`},
		{`eddy.any{ eddy.eq("k", "x"), eddy.lt("n", 2) }`, `row.k == "x" or row.n < 2`},
	}
	for _, tc := range tests {
		t.Run(tc.decl, func(t *testing.T) {
			const head = `key = "k", aggregate = { n = eddy.count() }, having = `
			d := runtimeOf(t, "return { "+head+tc.decl+" }")
			l := runtimeOf(t, "return { "+head+"function(row) return "+tc.lua+" end }")
			for _, k := range []string{"x", "y"} {
				for _, v := range values {
					row := connectors.Row{Fields: []connectors.Field{{Name: "k", Value: k}, {Name: "n", Value: v}}}
					got, want := havingOutcome(d, row), havingOutcome(l, row)
					if got != want {
						t.Errorf("k=%s n=%#v: declarative gives %s, Lua %s", k, v, got, want)
					}
				}
			}
		})
	}
}

func havingOutcome(rt *Runtime, row connectors.Row) string {
	ok, err := rt.Having(row)
	if err != nil {
		return "error"
	}
	return fmt.Sprint(ok)
}
