package actors

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// Event-time windows in a KeyedAggregator: adding records to the windows
// they belong to, firing the windows and timers the watermark has passed,
// and dropping windows once they can take no more late records.

// addWindowed adds record i of m to its windows; a window the watermark has
// closed sends the record to the late output instead.
func (a *KeyedAggregator) addWindowed(k *scripting.Keyed, nk int, m *keyedBatch, i int) error {
	w := a.p.Window
	lateness := a.p.AllowedLateness.Milliseconds()
	if w.Kind == "session" {
		return a.addSession(k, nk, m, i, lateness)
	}
	var late int
	var buf [4][2]int64
	for _, win := range w.Windows(k.Time, buf[:0]) {
		sk, en := a.windowEntry(k.Key, win[0])
		closed := win[1]+lateness <= a.watermark
		emitted := (en != nil && en.fired || en == nil && win[1] <= a.watermark) && a.p.Emit == scripting.EmitFinal
		if closed || emitted {
			late++
			continue
		}
		fresh := en == nil
		en, err := a.addTo(sk, en, k, nk, win[0], win[1])
		if err != nil {
			return err
		}
		if fresh {
			en.sk = sk
			a.win.lastWindow.put(en)
		}
		if win[1] <= a.watermark && !en.fired {
			en.fired = true // a late update of a window that fired empty
			a.win.expiries.push(timerItem{at: en.end, key: sk})
		}
	}
	if late > 0 {
		a.late(m, i, k.Time, late)
	}
	return nil
}

// windowEntry returns the state key of key's window starting at start
// and its entry (nil before the window has one). Most records fall in
// their key's latest window, whose entry lastWindow holds, so finding it
// costs one map lookup, no allocation and no hop through another object.
func (a *KeyedAggregator) windowEntry(key string, start int64) (string, *entry) {
	if en := a.win.lastWindow.get(key); en != nil && en.start == start && !en.gone && en.sk != "" {
		return en.sk, en
	}
	sk := windowKey(key, start)
	en := a.entries[sk]
	if en != nil {
		en.sk = sk
		a.win.lastWindow.put(en)
	}
	return sk, en
}

// addSession merges the record's session [t, t+gap) with the key's open
// sessions it touches.
func (a *KeyedAggregator) addSession(k *scripting.Keyed, nk int, m *keyedBatch, i int, lateness int64) error {
	gap := a.p.Window.Gap.Milliseconds()
	start, end := k.Time, k.Time+gap
	if end+lateness <= a.watermark || end <= a.watermark && a.p.Emit == scripting.EmitFinal {
		a.late(m, i, k.Time, 1)
		return nil
	}
	var merged *entry
	var old string // merged's state key: a session's is its start's
	var keep []*entry
	for _, s := range a.win.sessions[k.Key] {
		if s.start > end || s.end < start {
			keep = append(keep, s)
			continue
		}
		if merged == nil {
			merged, old = s, windowKey(k.Key, s.start)
			if a.entries[old] != s {
				return fmt.Errorf("open session of key %q from %s: not under its state key (an engine bug: please report it)", k.Key, scripting.FormatTime(s.start))
			}
			continue
		}
		if err := a.rt.Merge(merged.accs, s.accs); err != nil {
			return err
		}
		merged.start, merged.end = min(merged.start, s.start), max(merged.end, s.end)
		a.supersede(windowKey(k.Key, s.start))
	}
	if merged == nil {
		if len(keep) == 0 {
			delete(a.win.sessions, k.Key) // (addTo adds the new one)
		} else {
			a.win.sessions[keep[0].key] = keep
		}
		sk := windowKey(k.Key, start)
		_, err := a.addTo(sk, a.entries[sk], k, nk, start, end)
		return err
	}
	merged.start, merged.end = min(merged.start, start), max(merged.end, end)
	if err := a.rt.Add(merged.accs, k.Vals[nk:]); err != nil {
		return err
	}
	a.win.sessions[merged.key] = append(keep, merged)
	sk := windowKey(k.Key, merged.start)
	if sk != old {
		a.supersede(old)
		a.entries[sk] = merged
		merged.gone = false // (supersede took it out under its old key)
		merged.dirty, merged.changed = false, false
	}
	a.touch(sk, merged)
	a.opened(sk, merged)
	return nil
}

// supersede removes a session merged into another of its key from state
// and from the emitter's table: the merged session covers it, so its own
// changes are not sent.
func (a *KeyedAggregator) supersede(sk string) {
	en := a.entries[sk]
	if en != nil {
		en.gone = true
	}
	delete(a.entries, sk)
	a.forget(sk, en)
	a.emit.superseded = append(a.emit.superseded, sk)
}

// sessionWindows: the pipeline's windows are sessions, which the emitter
// merges across partitions (see Emitter.sessionRows).
func (a *KeyedAggregator) sessionWindows() bool {
	return a.p.IsWindowed() && a.p.Window.Kind == "session"
}

// sendOpenSessions sends the emitter the open sessions that changed, in a
// final emit (after the fired ones and those superseded: sendFired): it
// needs every partition's sessions of a key, open ones too, to merge those
// that overlap or touch, and fires a merged session only once all of it
// has fired.
func (a *KeyedAggregator) sendOpenSessions(ctx actor.Context) error {
	var rows []partial
	for _, sk := range a.emit.changed {
		en := a.entries[sk]
		if en == nil || en.fired {
			continue // gone, or sent as fired
		}
		p, err := a.partial(sk, en)
		if err != nil {
			return err
		}
		rows = append(rows, p)
	}
	if len(rows) > 0 {
		a.toEmitter(ctx, &resultRows{partition: a.partition, shard: a.shard, rows: rows})
	}
	return nil
}

// drop removes a window entry from state and from the emitter's table; a
// change not yet sent goes to the emitter with the next trigger first.
func (a *KeyedAggregator) drop(sk string) {
	en, ok := a.entries[sk]
	if !ok {
		return
	}
	if en.changed && !a.windowedFinal() {
		if p, err := a.partial(sk, en); err == nil {
			a.emit.lastChanges = append(a.emit.lastChanges, p)
		}
	}
	en.gone = true
	delete(a.entries, sk)
	a.forget(sk, en)
	a.emit.dropped = append(a.emit.dropped, sk)
}

// forget deletes entry en, gone from state key sk, from the store and the
// changelog at the next checkpoint, unless no checkpoint wrote it. (A key
// some other entry left there has its own delete queued already: every
// entry that leaves a key it was written at queues one.)
func (a *KeyedAggregator) forget(sk string, en *entry) {
	if en == nil || !en.unstored {
		a.unwritten.deleted = append(a.unwritten.deleted, sk)
	}
	delete(a.localEntries, sk)
}

// late sends record i of m to the late output.
func (a *KeyedAggregator) late(m *keyedBatch, i int, t int64, windows int) {
	wm := scripting.FormatTime(a.watermark)
	row := connectors.Row{Key: strings.Clone(m.rows[i].Key), Fields: []connectors.Field{
		{Name: "reason", Value: fmt.Sprintf("late: event time %s is behind the watermark %s by more than allowed_lateness (%v) for %d window(s)",
			scripting.FormatTime(t), wm, a.p.AllowedLateness, windows)},
		{Name: "event_time", Value: scripting.FormatTime(t)},
		{Name: "watermark", Value: wm},
		{Name: "partition", Value: a.partition},
		{Name: "source", Value: m.src.Locate(m.idx[i])},
		{Name: "record", Value: string(m.src.Records[m.idx[i]].Value)},
	}}
	a.e.cfg.Stats.Late.Add(1)
	a.out.add("late", row)
}

// advance moves the shard's watermark to wm (the end of time when final)
// and fires what it passed: windows (in end order, running on_window), then
// event-time timers; then it drops windows past their allowed lateness.
func (a *KeyedAggregator) advance(wm int64, final bool) error {
	if final {
		wm = math.MaxInt64
	}
	if wm <= a.watermark && !final {
		return nil
	}
	a.watermark = max(a.watermark, wm)
	// A join's timers fire first when its rows are aggregated: a left
	// join's lone rows come at their window's end, into its window.
	timersFirst := a.p.AggregatesJoin()
	if timersFirst {
		if err := a.fireTimers(final); err != nil {
			return err
		}
	}
	if a.p.IsWindowed() {
		if err := a.fireWindows(); err != nil {
			return err
		}
	}
	if !timersFirst {
		if err := a.fireTimers(final); err != nil {
			return err
		}
	}
	if a.p.IsWindowed() {
		a.expireWindows()
	}
	return nil
}

// fireWindows fires the open windows whose end the watermark has passed.
func (a *KeyedAggregator) fireWindows() error {
	for a.win.ends.Len() > 0 && a.win.ends[0].at <= a.watermark {
		it := a.win.ends.pop()
		en := a.entries[it.key]
		if en == nil || en.fired || en.end != it.at {
			continue // gone, fired, or a session that grew since
		}
		en.fired = true
		a.touch(it.key, en)
		a.win.expiries.push(timerItem{at: en.end, key: it.key})
		if a.p.Window.Kind == "session" {
			a.removeSession(en)
		}
		p, err := a.partial(it.key, en)
		if err != nil {
			return err
		}
		p.firedBy = a.readAt
		a.emit.fired = append(a.emit.fired, p)
		if err := a.onWindow(en, p); err != nil {
			return err
		}
	}
	return nil
}

// opened queues a window's end for firing.
func (a *KeyedAggregator) opened(sk string, en *entry) {
	a.win.ends.push(timerItem{at: en.end, key: sk})
}

func (a *KeyedAggregator) removeSession(en *entry) {
	list := a.win.sessions[en.key]
	for i, s := range list {
		if s == en {
			a.win.sessions[en.key] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(a.win.sessions[en.key]) == 0 {
		delete(a.win.sessions, en.key)
	}
}

func (a *KeyedAggregator) onWindow(en *entry, p partial) error {
	if !a.p.HasKeyHooks() || a.p.HasJoin() { // (a join has no on_window)
		return nil
	}
	res, err := a.rt.Results(en.accs)
	if err != nil {
		return err
	}
	cols := a.p.Columns()
	row := connectors.Row{Key: en.key, Fields: make([]connectors.Field, len(cols))}
	vals := append(append([]any(nil), p.keyVals...), res...)
	for i, c := range cols {
		row.Fields[i] = connectors.Field{Name: c, Value: vals[i]}
	}
	st := a.state(en.key)
	hr, err := a.rt.OnWindow(st.ks, en.key, row, en.end, a.watermark)
	a.afterHook(en.key, st, hr)
	return err
}

// expireWindows drops fired windows that can take no more late records.
func (a *KeyedAggregator) expireWindows() {
	lateness := a.p.AllowedLateness.Milliseconds()
	for a.win.expiries.Len() > 0 && (a.watermark == math.MaxInt64 || a.win.expiries[0].at+lateness <= a.watermark) {
		it := a.win.expiries.pop()
		if en := a.entries[it.key]; en != nil && en.fired && en.end == it.at {
			a.drop(it.key)
		}
	}
}

// fireTimers runs on_timer for the event-time timers the watermark has
// passed, in time order. Processing-time timers are fireClock's.
func (a *KeyedAggregator) fireTimers(final bool) error {
	return a.fireDue(&a.timers.event, a.watermark, false)
}

// fireClock runs on_timer for the processing-time timers the wall clock has
// passed; the shard checks at every barrier (so at trigger resolution), and
// not because the input ended.
func (a *KeyedAggregator) fireClock() error {
	return a.fireDue(&a.timers.processing, time.Now().UnixMilli(), true)
}

func (a *KeyedAggregator) fireDue(h *timerQueue, limit int64, processing bool) error {
	for h.Len() > 0 && (*h)[0].at <= limit {
		it := h.pop()
		st := a.states[it.key]
		if st == nil {
			continue
		}
		t, ok := st.ks.Timers[it.name]
		if !ok || t.At != it.at || t.Processing != processing {
			continue // replaced or deleted since it was queued
		}
		res, err := a.rt.OnTimer(st.ks, it.key, it.name, a.watermark)
		if err == nil && !processing {
			res, err = a.joinTimerRows(it.key, res) // (join.go)
		}
		a.afterHook(it.key, st, res)
		if err != nil {
			return err
		}
	}
	return nil
}

// timerHeap queues every key's timers by time, event time and wall clock
// apart; entries are checked against the key's timers when they come due,
// so a replaced or deleted timer needs no removal.
type timerHeap struct{ event, processing timerQueue }

type timerItem struct {
	at        int64
	key, name string
}

type timerQueue []timerItem

func (q timerQueue) Len() int { return len(q) }
func (q timerQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	if q[i].key != q[j].key {
		return q[i].key < q[j].key
	}
	return q[i].name < q[j].name
}
func (q timerQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *timerQueue) Push(x any)   { *q = append(*q, x.(timerItem)) }
func (q *timerQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

// push and pop are container/heap's Push and Pop without boxing the item
// in an interface (an allocation each: four a window). They keep the
// same order, so the two can be mixed.
func (q *timerQueue) push(it timerItem) {
	*q = append(*q, it)
	for i := len(*q) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q.Less(i, parent) {
			break
		}
		q.Swap(i, parent)
		i = parent
	}
}

func (q *timerQueue) pop() timerItem {
	last := len(*q) - 1
	q.Swap(0, last)
	it := (*q)[last]
	(*q)[last] = timerItem{} // (not to keep its key alive)
	*q = (*q)[:last]
	for i := 0; ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < last && q.Less(l, least) {
			least = l
		}
		if r < last && q.Less(r, least) {
			least = r
		}
		if least == i {
			break
		}
		q.Swap(i, least)
		i = least
	}
	return it
}

func (h *timerHeap) pushAll(key string, ks *scripting.KeyState) {
	for name, t := range ks.Timers {
		q := &h.event
		if t.Processing {
			q = &h.processing
		}
		q.push(timerItem{at: t.At, key: key, name: name})
	}
}

// windowStamps keeps the texts of recent window bounds: the windows of
// all keys share a few starts and ends, and formatting each window's
// anew cost four allocations a window.
type windowStamps map[int64]any

// stampsKept bounds a windowStamps (session windows' bounds rarely repeat).
const stampsKept = 256

// of is scripting.FormatTime(ms) as an any.
func (s *windowStamps) of(ms int64) any {
	if v, ok := (*s)[ms]; ok {
		return v
	}
	if *s == nil || len(*s) >= stampsKept {
		*s = windowStamps{}
	}
	v := any(scripting.FormatTime(ms))
	(*s)[ms] = v
	return v
}

// heldOutput collects the rows a shard emits (hook rows, late records,
// dead letters) and sends them to their sinks, holding them back while a
// barrier the shard passed is not settled.
type heldOutput struct {
	holding bool
	pending map[string][]connectors.Row
	held    map[string][]connectors.Row
}

func (o *heldOutput) add(sink string, row connectors.Row) {
	if o.pending == nil {
		o.pending = map[string][]connectors.Row{}
	}
	o.pending[sink] = append(o.pending[sink], row)
}

// flushTo sends (or, while holding, holds) what was added.
func (o *heldOutput) flushTo(ctx actor.Context, e *engine) {
	if len(o.pending) == 0 {
		return
	}
	if o.holding {
		if o.held == nil {
			o.held = map[string][]connectors.Row{}
		}
		for sink, rows := range o.pending {
			o.held[sink] = append(o.held[sink], rows...)
		}
	} else {
		send(ctx, e, o.pending)
	}
	o.pending = nil
}

func (o *heldOutput) hold(e *engine) {
	o.holding = len(e.outputs) > 0 || e.deadLetters != nil || e.late != nil
}

func (o *heldOutput) release(ctx actor.Context, e *engine) {
	o.holding = false
	if len(o.held) > 0 {
		send(ctx, e, o.held)
		o.held = nil
	}
}

func send(ctx actor.Context, e *engine, rows map[string][]connectors.Row) {
	for sink, rs := range rows {
		if pid := e.writer(sink); pid != nil {
			ctx.Send(pid, &rowsOut{rows: rs})
			continue
		}
		if sink != "late" && sink != "dead_letter" {
			e.cfg.Logger.Error("rows emitted to a sink the pipeline doesn't have", "sink", sink, "rows", len(rs), "sinks", e.outputNames())
			e.cfg.Stats.Failed.Add(int64(len(rs)))
		}
	}
}
