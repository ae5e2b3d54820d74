package scripting

import (
	"fmt"
	"math"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Event time: where a record's time comes from, how far out of order
// records may come, the windows results are grouped in, and the per-key
// hooks (on_record, on_window, on_timer) that keep state and set timers.

// EventTime says where records' event time comes from.
type EventTime struct {
	// Field names the record field holding the time (RFC 3339 string, or
	// Unix seconds as a number); empty with Func or Source.
	Field string
	// Func: a Lua function(record) returns Unix seconds.
	Func bool
	// Source: the source's record time (Kafka's timestamp).
	Source bool
}

// Watermark bounds disorder: the watermark of a partition is the latest
// event time it has seen minus OutOfOrder; a partition without records for
// IdleTimeout stops holding the pipeline's watermark back; a record more
// than MaxFuture ahead of its partition's latest time (or of the clock, for
// the first) is rejected rather than allowed to push the watermark past
// everything else.
type Watermark struct {
	OutOfOrder, IdleTimeout, MaxFuture time.Duration
}

// Window is how results are grouped in event time.
type Window struct {
	Kind  string // "tumbling", "hopping", "session"
	Size  time.Duration
	Slide time.Duration // hopping
	Gap   time.Duration // session
}

// Default watermark settings.
const (
	DefaultOutOfOrder  = 5 * time.Second
	DefaultIdleTimeout = time.Minute
	DefaultMaxFuture   = 24 * time.Hour
)

// IsWindowed says whether results are grouped in event-time windows.
func (p *Pipeline) IsWindowed() bool { return p.Window != nil }

// HasEventTime says whether records carry an event time.
func (p *Pipeline) HasEventTime() bool { return p.EventTime != nil }

// HasKeyHooks says whether the script keeps per-key state in Lua hooks.
// (A join keeps its waiting records in the same per-key state.)
func (p *Pipeline) HasKeyHooks() bool { return p.onRecord || p.onWindow || p.onTimer || p.Join != nil }

func (p *Pipeline) readEventTime(t *lua.LTable) error {
	p.Watermark = Watermark{OutOfOrder: DefaultOutOfOrder, IdleTimeout: DefaultIdleTimeout, MaxFuture: DefaultMaxFuture}
	switch v := t.RawGetString("event_time").(type) {
	case *lua.LNilType:
	case lua.LString:
		p.EventTime = &EventTime{Field: string(v)}
	case *lua.LFunction:
		p.EventTime = &EventTime{Func: true}
	case *lua.LTable:
		if kind, _ := v.RawGetString(specKind).(lua.LString); kind == "source_time" {
			p.EventTime = &EventTime{Source: true}
			break
		}
		return fmt.Errorf("event_time: want a field name, a function(record) returning Unix seconds, or eddy.source_time()")
	default:
		return fmt.Errorf("event_time: want a field name, a function(record) returning Unix seconds, or eddy.source_time(), got %s", v.Type())
	}
	if v := t.RawGetString("watermark"); v != lua.LNil {
		wt, ok := v.(*lua.LTable)
		if !ok {
			return fmt.Errorf("watermark: want a table such as { out_of_order = \"10s\", idle_timeout = \"1m\" }, got %s", v.Type())
		}
		var err error
		wt.ForEach(func(k, val lua.LValue) {
			if err != nil {
				return
			}
			var dst *time.Duration
			switch lua.LVAsString(k) {
			case "out_of_order":
				dst = &p.Watermark.OutOfOrder
			case "idle_timeout":
				dst = &p.Watermark.IdleTimeout
			case "max_future":
				dst = &p.Watermark.MaxFuture
			default:
				err = fmt.Errorf("watermark: unknown setting %s (known: out_of_order, idle_timeout, max_future)", k)
				return
			}
			*dst, err = duration("watermark."+lua.LVAsString(k), val, true)
		})
		if err != nil {
			return err
		}
	}
	w, err := readWindow(t.RawGetString("window"))
	if err != nil {
		return err
	}
	p.Window = w
	if v := t.RawGetString("allowed_lateness"); v != lua.LNil {
		var err error
		if p.AllowedLateness, err = duration("allowed_lateness", v, true); err != nil {
			return err
		}
	}
	for name, dst := range map[string]*bool{"on_record": &p.onRecord, "on_window": &p.onWindow, "on_timer": &p.onTimer} {
		switch v := t.RawGetString(name); v.(type) {
		case *lua.LNilType:
		case *lua.LFunction:
			*dst = true
		default:
			return fmt.Errorf("%s: want a function, got %s", name, v.Type())
		}
	}
	switch {
	case p.Window != nil && p.EventTime == nil:
		return fmt.Errorf("window: windows group records by event time: add event_time = \"field\"")
	case p.Window != nil && !p.HasAggregate():
		return fmt.Errorf("window: a window needs an aggregate to compute")
	case p.onWindow && p.Window == nil:
		return fmt.Errorf("on_window: runs when a window fires: add a window")
	case p.HasKeyHooks() && len(p.KeyColumns) == 0:
		return fmt.Errorf("on_record, on_window and on_timer keep state per key: add a key")
	case p.AllowedLateness > 0 && p.Window == nil && t.RawGetString("join") == lua.LNil:
		return fmt.Errorf("allowed_lateness: applies to windows and joins: add a window")
	}
	return nil
}

// readWindow reads a window spec; nil when v is nil.
func readWindow(v lua.LValue) (*Window, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case *lua.LTable:
		kind, _ := v.RawGetString(specKind).(lua.LString)
		w := &Window{Kind: string(kind)}
		var err error
		switch kind {
		case "tumbling":
			w.Size, err = duration("window size", v.RawGetString("size"), false)
		case "hopping":
			if w.Size, err = duration("window size", v.RawGetString("size"), false); err == nil {
				w.Slide, err = duration("window slide", v.RawGetString("slide"), false)
			}
			if err == nil && (w.Slide > w.Size || w.Size%w.Slide != 0) {
				err = fmt.Errorf("window: a hopping window's size (%v) must be a whole multiple of its slide (%v)", w.Size, w.Slide)
			}
		case "session":
			w.Gap, err = duration("session gap", v.RawGetString("gap"), false)
		default:
			err = fmt.Errorf("window: want eddy.tumbling(size), eddy.hopping(size, slide) or eddy.session(gap)")
		}
		if err != nil {
			return nil, err
		}
		return w, nil
	default:
		return nil, fmt.Errorf("window: want eddy.tumbling(size), eddy.hopping(size, slide) or eddy.session(gap), got %s", v.Type())
	}
}

// duration reads "30s"-style durations (or seconds as a number).
func duration(what string, v lua.LValue, zeroOK bool) (time.Duration, error) {
	var d time.Duration
	switch v := v.(type) {
	case lua.LString:
		var err error
		if d, err = time.ParseDuration(string(v)); err != nil {
			return 0, fmt.Errorf("%s: %q is not a duration such as \"30s\" or \"5m\"", what, string(v))
		}
	case lua.LNumber:
		d = time.Duration(float64(v) * float64(time.Second))
	default:
		return 0, fmt.Errorf("%s: want a duration such as \"30s\", got %s", what, v.Type())
	}
	if d < 0 || (d == 0 && !zeroOK) {
		return 0, fmt.Errorf("%s: %v must be positive", what, d)
	}
	return d, nil
}

// eventTime reads a record's event time in Unix milliseconds.
func (rt *Runtime) eventTime(r *lua.LTable, sourceTime int64) (int64, error) {
	et := rt.p.EventTime
	switch {
	case et.Source:
		if sourceTime == 0 {
			return 0, fmt.Errorf("event time: the source gives this record no timestamp")
		}
		return sourceTime, nil
	case et.Func:
		if err := rt.call(rt.eventFn, 1, r); err != nil {
			return 0, fmt.Errorf("event_time: %w", err)
		}
		v := rt.sb.L.Get(-1)
		rt.sb.L.Pop(1)
		n, ok := v.(lua.LNumber)
		if !ok {
			return 0, fmt.Errorf("event_time: %s: the event_time function returned a %s, want Unix seconds", rt.p.Script, v.Type())
		}
		return secondsToMillis(float64(n))
	}
	switch v := r.RawGetString(et.Field).(type) {
	case lua.LString:
		ms, err := rfc3339Millis(string(v))
		if err != nil {
			return 0, fmt.Errorf("event time: field %q is %q, not an RFC 3339 time", et.Field, shorten(string(v)))
		}
		return ms, nil
	case lua.LNumber:
		return secondsToMillis(float64(v))
	case *lua.LNilType:
		return 0, fmt.Errorf("event time: field %q is missing", et.Field)
	default:
		return 0, fmt.Errorf("event time: field %q is a %s, want an RFC 3339 string or Unix seconds", et.Field, v.Type())
	}
}

func secondsToMillis(s float64) (int64, error) {
	if math.IsNaN(s) || math.IsInf(s, 0) || math.Abs(s) > 1e13 {
		return 0, fmt.Errorf("event time: %v is not a time in Unix seconds", s)
	}
	return int64(math.Round(s * 1000)), nil
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// timeLayout is how result rows write times.
const timeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime renders Unix milliseconds as RFC 3339 in UTC, the form
// window_start and window_end take in result rows.
func FormatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(timeLayout)
}

// Windows returns the windows a record at ms belongs to, as [start, end)
// pairs in Unix milliseconds. A session window is [ms, ms+gap), merged by
// the caller with its neighbours.
func (w *Window) Windows(ms int64, dst [][2]int64) [][2]int64 {
	switch w.Kind {
	case "tumbling":
		size := w.Size.Milliseconds()
		start := floorDiv(ms, size) * size
		return append(dst, [2]int64{start, start + size})
	case "hopping":
		size, slide := w.Size.Milliseconds(), w.Slide.Milliseconds()
		last := floorDiv(ms, slide) * slide
		for start := last - size + slide; start <= last; start += slide {
			dst = append(dst, [2]int64{start, start + size})
		}
		return dst
	default:
		return append(dst, [2]int64{ms, ms + w.Gap.Milliseconds()})
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// WindowColumns are the columns a windowed result row adds after its key.
var WindowColumns = []string{"window_start", "window_end"}
