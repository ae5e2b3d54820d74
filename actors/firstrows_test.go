package actors

import (
	"fmt"
	"math/rand"
	"reflect"
	"sort"
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

// TestSortByStartAgreesWithRowOrder: windows' rows with no order_by sort
// the same by sortTable (strings compared directly) as by rowOrder (by
// scripting.Compare): by start, then key, many rows sharing a start. A
// table whose starts are not all strings is rowOrder's too.
func TestSortByStartAgreesWithRowOrder(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for _, size := range []int{0, 1, 2, 50, 3000} {
		for _, numeric := range []bool{false, true} {
			rows := randomWindows(r, size, numeric)
			want := append([]connectors.Row(nil), rows...)
			sort.Slice(want, rowOrder(want, nil))
			got := append([]connectors.Row(nil), rows...)
			sortTable(got, nil)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%d rows (a numeric start: %v):\n got %v\nwant %v", size, numeric, keys(got), keys(want))
			}
		}
	}
}

// randomWindows are windows' rows of a few starts; with numeric, one row's
// start is a number.
func randomWindows(r *rand.Rand, n int, numeric bool) []connectors.Row {
	rows := make([]connectors.Row, n)
	for i := range rows {
		start := fmt.Sprintf("2026-12-01T07:%02d:00Z", r.Intn(5))
		key := fmt.Sprintf("sensor-%05d%s%s", r.Intn(1_000_000)*n+i, windowSep, start)
		rows[i] = connectors.Row{Key: key, Fields: []connectors.Field{
			{Name: "sensor", Value: key[:12]},
			{Name: scripting.WindowColumns[0], Value: start},
			{Name: scripting.WindowColumns[1], Value: "end"},
			{Name: "readings", Value: int64(r.Intn(60))},
		}}
	}
	if numeric && n > 0 {
		rows[n/2].Fields[1].Value = int64(7)
	}
	return rows
}
