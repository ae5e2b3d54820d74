package scripting

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// CheckReload says whether next may replace the running pipeline old in a
// live run: it must keep old's state layout (key columns, aggregates and
// windows, event time and key hooks), its result shape and its source and
// sinks, which the run opened once. What may change is how records are
// parsed, filtered and keyed, and the script's limits and tests. The error
// names the first difference, as "aggregate "count" changed from count()
// to sum("bytes")".
func CheckReload(old, next *Pipeline) error {
	if err := checkStagesReload(old); err != nil {
		return err
	}
	for _, c := range []struct {
		what     string
		old, new string
	}{
		{"the pipeline's name", strconv.Quote(old.Name), strconv.Quote(next.Name)},
		{"the key columns", columnList(old.KeyColumns), columnList(next.KeyColumns)},
		{"the aggregates", aggNames(old.Aggregates), aggNames(next.Aggregates)},
	} {
		if c.old != c.new {
			return fmt.Errorf("%s changed from %s to %s", c.what, c.old, c.new)
		}
	}
	for i, a := range old.Aggregates {
		if b := next.Aggregates[i]; a != b {
			return fmt.Errorf("aggregate %q changed from %s to %s", a.Name, describeAgg(a), describeAgg(b))
		}
	}
	if err := checkMapReload(old, next); err != nil {
		return err
	}
	for _, c := range []struct {
		what     string
		old, new string
	}{
		{"the window", describeWindow(old.Window), describeWindow(next.Window)},
		{"event_time", describeEventTime(old.EventTime), describeEventTime(next.EventTime)},
		{"the watermark", fmt.Sprintf("%+v", old.Watermark), fmt.Sprintf("%+v", next.Watermark)},
		{"allowed_lateness", old.AllowedLateness.String(), next.AllowedLateness.String()},
		{"the key hooks", describeHooks(old), describeHooks(next)},
		{"the emit mode", old.Emit, next.Emit},
		{"order_by", fmt.Sprint(old.OrderBy), fmt.Sprint(next.OrderBy)},
		{"limit", strconv.Itoa(old.Limit), strconv.Itoa(next.Limit)},
		{"the source", strconv.Quote(old.Source), strconv.Quote(next.Source)},
		{"the sinks", describeSinks(old.Sinks), describeSinks(next.Sinks)},
		{"route", strconv.FormatBool(old.hasRoute), strconv.FormatBool(next.hasRoute)},
		{"the sources", describeSources(old), describeSources(next)},
		{"the join", describeJoin(old.Join), describeJoin(next.Join)},
		{"the stages", describeStages(old), describeStages(next)},
	} {
		if c.old != c.new {
			return fmt.Errorf("%s changed from %s to %s", c.what, c.old, c.new)
		}
	}
	return nil
}

func columnList(cols []string) string { return "(" + strings.Join(cols, ", ") + ")" }

func aggNames(aggs []AggSpec) string {
	names := make([]string, len(aggs))
	for i, a := range aggs {
		names[i] = a.Name
	}
	return columnList(names)
}

// describeAgg writes an aggregate much as the script calls it: count(),
// sum("bytes"), top(5, "dst", "bytes"), or "a Lua aggregate".
func describeAgg(a AggSpec) string {
	if a.Func == "lua" {
		return "a Lua aggregate"
	}
	var args []string
	if a.N != 0 {
		args = append(args, strconv.Itoa(a.N))
	}
	for _, s := range []string{a.Field, a.By} {
		if s != "" {
			args = append(args, strconv.Quote(s))
		}
	}
	return a.Func + "(" + strings.Join(args, ", ") + ")"
}

func describeWindow(w *Window) string {
	if w == nil {
		return "none"
	}
	switch w.Kind {
	case "hopping":
		return fmt.Sprintf("hopping(%v, %v)", w.Size, w.Slide)
	case "session":
		return fmt.Sprintf("session(%v)", w.Gap)
	case "join":
		return "the join's"
	}
	return fmt.Sprintf("%s(%v)", w.Kind, w.Size)
}

func describeEventTime(t *EventTime) string {
	switch {
	case t == nil:
		return "none"
	case t.Func:
		return "a function"
	case t.Source:
		return "the source's time"
	}
	return strconv.Quote(t.Field)
}

func describeHooks(p *Pipeline) string {
	var hooks []string
	for _, h := range []struct {
		name string
		on   bool
	}{{"on_record", p.onRecord}, {"on_window", p.onWindow}, {"on_timer", p.onTimer}} {
		if h.on {
			hooks = append(hooks, h.name)
		}
	}
	if len(hooks) == 0 {
		return "none"
	}
	return strings.Join(hooks, ", ")
}

func describeSinks(s map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s)) {
		parts = append(parts, k+"="+s[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
