package actors

import (
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// TestFirstRowsAgreesWithSort: the first n rows a limited table keeps are
// those of sorting the whole table and cutting it, ties included (few
// distinct counts, so many rows tie on the order columns and rank by key).
func TestFirstRowsAgreesWithSort(t *testing.T) {
	orders := [][]scripting.Order{
		{{Column: "count", Desc: true}, {Column: "device"}},
		{{Column: "count", Desc: true}},
		{{Column: "device", Desc: true}, {Column: "count"}},
	}
	r := rand.New(rand.NewSource(3))
	for _, size := range []int{0, 1, 5, 20, 21, 500} {
		for _, n := range []int{1, 3, 20, 600} {
			for oi, order := range orders {
				rows := randomTable(r, size)
				want := append([]connectors.Row(nil), rows...)
				sortTable(want, order)
				want = want[:min(n, len(want))]
				got := firstRows(rows, order, n)
				if len(got) == 0 && len(want) == 0 {
					continue
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%d rows, first %d, order %d:\n got %v\nwant %v", size, n, oi, keys(got), keys(want))
				}
			}
		}
	}
}

func randomTable(r *rand.Rand, n int) []connectors.Row {
	rows := make([]connectors.Row, n)
	for i := range rows {
		rows[i] = connectors.Row{Key: fmt.Sprintf("k%05d", r.Intn(1_000_000)*n+i), Fields: []connectors.Field{
			{Name: "device", Value: fmt.Sprintf("Comp%d", r.Intn(7))},
			{Name: "count", Value: int64(r.Intn(4))},
		}}
	}
	return rows
}

func keys(rows []connectors.Row) []string {
	k := make([]string, len(rows))
	for i, r := range rows {
		k[i] = r.Key
	}
	return k
}
