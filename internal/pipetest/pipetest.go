// Package pipetest runs a pipeline's inline tests on the real engine: each
// test's input lines go through the actor tree from an in-memory source,
// with in-memory state, and the emitted rows are compared with the test's
// expectations.
package pipetest

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// Result is the outcome of one inline test.
type Result struct {
	Name string
	// Failures describe each mismatch; empty when the test passed.
	Failures []string
}

// Passed says whether the test passed.
func (r Result) Passed() bool { return len(r.Failures) == 0 }

// Run runs every inline test of p. Tests run with emit mode final, so
// want lists the whole result table in order_by order.
func Run(ctx context.Context, p *scripting.Pipeline) ([]Result, error) {
	var out []Result
	for _, tc := range p.Tests {
		r, err := runOne(ctx, p, tc)
		if err != nil {
			return out, fmt.Errorf("%s: test %q: %w", p.Script, tc.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func runOne(ctx context.Context, p *scripting.Pipeline, tc scripting.Test) (Result, error) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		return Result{}, err
	}
	defer store.Close()
	tp := *p
	// want is the result table at the end: a final emit gives it whole.
	// Windowed pipelines keep their mode (it decides what is late), and
	// want is each window's last row.
	if !p.Last().IsWindowed() {
		if err := tp.SetEmit(scripting.EmitFinal); err != nil {
			return Result{}, err
		}
	}
	results, records, dead := &memio.Sink{}, &memio.Sink{}, &memio.Sink{}
	var src connectors.Source = &memio.Source{Lines: tc.Input}
	if p.HasSources() {
		sources := map[string]connectors.Source{}
		for _, name := range p.SourceNames() {
			sources[name] = &memio.Source{Lines: tc.Inputs[name]}
		}
		m, err := connectors.NewMerged(ctx, sources)
		if err != nil {
			return Result{}, err
		}
		src = connectors.Single{Partition: m}
	}
	cfg := actors.Config{Pipeline: &tp, Source: src, Store: store, DeadLetters: dead, MaxErrors: -1, Shards: 2}
	if p.HasAggregate() {
		cfg.Results = results
	}
	if !p.HasAggregate() || tc.WantRecords != nil {
		cfg.Records = records
	}
	late := &memio.Sink{}
	if p.IsWindowed() || p.HasJoin() {
		cfg.Late = late
	}
	outputs := map[string]*memio.Sink{}
	if p.HasRoute() || p.HasKeyHooks() {
		cfg.Outputs = map[string]connectors.Sink{}
		for _, name := range p.Outputs() {
			outputs[name] = &memio.Sink{}
			cfg.Outputs[name] = outputs[name]
		}
		if cfg.Records != nil {
			outputs["records"] = records // Records is the "records" output
		}
	}
	if _, err := actors.Run(ctx, cfg); err != nil {
		return Result{}, err
	}
	res := Result{Name: tc.Name}
	if tc.Want != nil {
		got := results.Rows()
		if last := tp.Last(); last.IsWindowed() && last.Emit != scripting.EmitFinal {
			got = lastPerWindow(got)
		}
		if d := diff(tc.Want, got); d != "" {
			res.Failures = append(res.Failures, "results differ (- want, + got):\n"+d)
		}
	}
	if tc.WantRecords != nil {
		d := diff(tc.WantRecords, records.Rows())
		if p.HasJoin() {
			// Joined rows come from several shards at once: compared in any order.
			d = diffUnordered(tc.WantRecords, records.Rows())
		}
		if d != "" {
			res.Failures = append(res.Failures, "records differ (- want, + got):\n"+d)
		}
	}
	for _, name := range sortedNames(tc.WantOutputs) {
		sink := outputs[name]
		if sink == nil {
			res.Failures = append(res.Failures, fmt.Sprintf("want_outputs.%s: the pipeline has no sink of that name", name))
			continue
		}
		// Hooks emit from several shards at once: order across keys is not
		// defined, so named outputs compare in any order.
		if d := diffUnordered(tc.WantOutputs[name], sink.Rows()); d != "" {
			res.Failures = append(res.Failures, "sink "+name+" differs (- want, + got):\n"+d)
		}
	}
	if tc.Late >= 0 && len(late.Rows()) != tc.Late {
		res.Failures = append(res.Failures, fmt.Sprintf("late records: got %d, want %d", len(late.Rows()), tc.Late))
	}
	if tc.DeadLetters >= 0 && len(dead.Rows()) != tc.DeadLetters {
		var sb strings.Builder
		for _, r := range dead.Rows() {
			e, _ := r.Get("error")
			fmt.Fprintf(&sb, "\n    %v", e)
		}
		res.Failures = append(res.Failures, fmt.Sprintf("dead letters: got %d, want %d%s", len(dead.Rows()), tc.DeadLetters, sb.String()))
	}
	return res, nil
}

// diff compares want and got row by row as canonical JSON (fields sorted,
// numbers compared by value) and renders the lines that differ.
func diff(want []map[string]any, got []connectors.Row) string {
	w := make([]string, len(want))
	for i, m := range want {
		w[i] = string(connectors.AppendValue(nil, normalise(m)))
	}
	g := make([]string, len(got))
	for i, r := range got {
		m := map[string]any{}
		for _, f := range r.Fields {
			m[f.Name] = f.Value
		}
		g[i] = string(connectors.AppendValue(nil, normalise(m)))
	}
	var sb strings.Builder
	same := len(w) == len(g)
	for i := 0; i < max(len(w), len(g)); i++ {
		switch {
		case i < len(w) && i < len(g) && w[i] == g[i]:
			fmt.Fprintf(&sb, "    %s\n", w[i])
		default:
			same = false
			if i < len(w) {
				fmt.Fprintf(&sb, "  - %s\n", w[i])
			}
			if i < len(g) {
				fmt.Fprintf(&sb, "  + %s\n", g[i])
			}
		}
	}
	if same {
		return ""
	}
	return sb.String()
}

// lastPerWindow keeps each window's last row, in window order.
func lastPerWindow(rows []connectors.Row) []connectors.Row {
	last := map[string]int{}
	var order []string
	for i, r := range rows {
		ws, _ := r.Get("window_start")
		id := fmt.Sprint(ws) + "\x1e" + r.Key
		if _, ok := last[id]; !ok {
			order = append(order, id)
		}
		last[id] = i
	}
	sort.Strings(order)
	out := make([]connectors.Row, len(order))
	for i, id := range order {
		out[i] = rows[last[id]]
	}
	return out
}

// diffUnordered is diff over both sides sorted by their JSON.
func diffUnordered(want []map[string]any, got []connectors.Row) string {
	w := append([]map[string]any(nil), want...)
	sort.Slice(w, func(i, j int) bool {
		return string(connectors.AppendValue(nil, normalise(w[i]))) < string(connectors.AppendValue(nil, normalise(w[j])))
	})
	g := append([]connectors.Row(nil), got...)
	sort.Slice(g, func(i, j int) bool { return string(rowJSON(g[i])) < string(rowJSON(g[j])) })
	return diff(w, g)
}

func rowJSON(r connectors.Row) []byte {
	m := map[string]any{}
	for _, f := range r.Fields {
		m[f.Name] = f.Value
	}
	return connectors.AppendValue(nil, normalise(m))
}

// normalise makes integral floats int64, so 3 and 3.0 compare equal.
func normalise(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalise(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalise(e)
		}
		return out
	}
	return v
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
