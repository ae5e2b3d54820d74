package nexmark

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/eddy-stream/eddy/internal/reference"
)

// What the tests of scripts/nexmark and eddy's kill -9 tests share: reading
// generated streams back, decoding a script's output into a reference's
// rows, and comparing the two.

// ReadDir reads the part-*.json files of a stream eddy gen wrote into
// dir, in name order (the stream's order).
func ReadDir[T Person | Auction | Bid](dir string) ([]T, error) {
	files, err := filepath.Glob(filepath.Join(dir, "part-*.json"))
	if err != nil {
		return nil, err
	}
	var out []T
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		rows, err := Read[T](bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, rows...)
	}
	return out, nil
}

// Decode decodes each JSON line of out strictly (an unknown field is an
// error naming the line) into R, and returns the reference rows f makes
// of each.
func Decode[R any](out []byte, f func(R) []any) ([]any, error) {
	var rows []any
	for i, l := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(l))
		d.DisallowUnknownFields()
		var r R
		if err := d.Decode(&r); err != nil {
			return nil, fmt.Errorf("output line %d: %w: %s", i+1, err, l)
		}
		rows = append(rows, f(r)...)
	}
	return rows, nil
}

// Compare says how got's rows differ from want's, rendered with %+v and
// sorted (partitions run in parallel, so order is not compared). With
// atLeastOnce, a row repeated in got is no difference: runs killed and
// restarted emit again the rows after their last checkpoint. An empty
// want is an error, since the comparison would prove nothing.
func Compare(want, got []any, atLeastOnce bool) error {
	if len(want) == 0 {
		return fmt.Errorf("the reference has no rows: the comparison would prove nothing")
	}
	w, g := render(want), render(got)
	if atLeastOnce {
		w, g = slices.Compact(w), slices.Compact(g)
	}
	return reference.DiffRows(strings.Join(w, "\n")+"\n", strings.Join(g, "\n")+"\n")
}

func render(rows []any) []string {
	lines := make([]string, len(rows))
	for i, r := range rows {
		lines[i] = fmt.Sprintf("%+v", r)
	}
	slices.Sort(lines)
	return lines
}

// Rows makes []any of a reference's rows, for Compare.
func Rows[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
