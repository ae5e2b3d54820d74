package reference

import (
	"fmt"
	"strings"
)

// DiffRows compares result rows, one a line, row by row: nil when they
// are equal, else an error naming the count and the first rows that
// differ (want is the reference's, got eddy's).
func DiffRows(want, got string) error {
	w := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	g := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	var diffs []string
	for i := range max(len(w), len(g)) {
		var wi, gi string
		if i < len(w) {
			wi = w[i]
		}
		if i < len(g) {
			gi = g[i]
		}
		if wi != gi {
			diffs = append(diffs, fmt.Sprintf("row %d: got %s, want %s", i+1, orNone(gi), orNone(wi)))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d rows differ (%d rows, want %d):\n%s", len(diffs), max(len(w), len(g)), len(g), len(w),
		strings.Join(diffs[:min(len(diffs), 5)], "\n"))
}

func orNone(row string) string {
	if row == "" {
		return "no row"
	}
	return row
}
