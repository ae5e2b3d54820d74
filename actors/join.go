package actors

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/eddy-stream/eddy/scripting"
)

// addJoined adds record i of m to its key's join state (scripting/join.go):
// the rows it pairs into go out with the hooks' rows, and a record too late
// for its window (or interval, or retention) goes to the late output as
// windows' do. A record the join can't take (an until field that is not a
// time) is an error for it alone.
func (a *KeyedAggregator) addJoined(k *scripting.Keyed, m *keyedBatch, i int) error {
	st := a.state(k.Key)
	res, late, err := a.rt.JoinRecord(st.ks, k.Key, k.Rec, k.Time, a.watermark)
	var aggErr error
	if a.p.AggregatesJoin() {
		res.Emits, aggErr = a.aggregateJoined(k.Key, res.Emits, false)
	}
	a.afterHook(k.Key, st, res) // (forgets a key left empty)
	if late > 0 {
		a.late(m, i, k.Time, late)
	}
	return cmp.Or(err, aggErr)
}

// aggregateJoined folds the joined rows among emits into the aggregate
// over the join's rows, each in its window's entry under the join key (a
// regular join's, without a window, in the join key's entry), and returns
// the other emits. A window the watermark has passed has fired already:
// the join never pairs into one (its records would be late), so a pair
// there is an engine error, not a late row. The lone rows of a left join
// come atExpiry, once the watermark has reached their window's end: the
// join's timers fire before the windows (advance), so theirs has not
// fired yet.
func (a *KeyedAggregator) aggregateJoined(key string, emits []scripting.Emit, atExpiry bool) ([]scripting.Emit, error) {
	rest := emits[:0]
	nk := len(a.p.KeyColumns)
	for _, em := range emits {
		if em.Sink != "records" {
			rest = append(rest, em)
			continue
		}
		k, err := a.rt.JoinedKeyed(key, em.Row)
		if err != nil {
			return rest, err
		}
		if !a.p.IsWindowed() {
			if err := a.aggregateUnwindowed(key, &k, nk); err != nil {
				return rest, err
			}
			continue
		}
		start, end := em.Window[0], em.Window[1]
		sk := windowKey(key, start)
		en := a.entries[sk]
		switch {
		case en != nil && en.fired || en == nil && end <= a.watermark && !atExpiry:
			return rest, fmt.Errorf("join: a pair for the window [%s, %s] the watermark (%s) has closed", scripting.FormatTime(start), scripting.FormatTime(end), scripting.FormatTime(a.watermark))
		case en != nil && (en.end != end || !slices.EqualFunc(en.keyVals, k.Vals[:nk], sameValue)):
			return rest, fmt.Errorf("key: join key %s: the window from %s holds the key (%v) to %s, and a joined row has (%v) to %s: the key columns after the join key must be the same for every left record of a join key and window",
				key, scripting.FormatTime(start), en.keyVals, scripting.FormatTime(en.end), k.Vals[:nk], scripting.FormatTime(end))
		}
		if _, err := a.addTo(sk, en, &k, nk, start, end); err != nil {
			return rest, err
		}
	}
	return rest, nil
}

// aggregateUnwindowed folds a regular join's row into its join key's
// entry.
func (a *KeyedAggregator) aggregateUnwindowed(key string, k *scripting.Keyed, nk int) error {
	en := a.entries[key]
	if en != nil && !slices.EqualFunc(en.keyVals, k.Vals[:nk], sameValue) {
		return fmt.Errorf("key: join key %s holds the key (%v), and a joined row has (%v): the key columns after the join key must be the same for every left record of a join key", key, en.keyVals, k.Vals[:nk])
	}
	_, err := a.addTo(key, en, k, nk, 0, 0)
	return err
}

// joinTimerRows folds the rows a join's timer made (an outer join's lone
// rows) into the aggregate over the join's rows, when there is one.
func (a *KeyedAggregator) joinTimerRows(key string, res scripting.HookResult) (scripting.HookResult, error) {
	if !a.p.AggregatesJoin() {
		return res, nil
	}
	var err error
	res.Emits, err = a.aggregateJoined(key, res.Emits, true)
	return res, err
}

func sameValue(x, y any) bool { return x == y }

// joinDone forgets a key whose join state is empty (every waiting record
// dropped, no timer left), after sending the rows its last timer made: an
// endless stream of keys would otherwise keep one empty state each.
func (a *KeyedAggregator) joinDone(key string, st *keyState, res scripting.HookResult) bool {
	if !a.p.HasJoin() || st.ks.Join != nil || len(st.ks.Timers) > 0 {
		return false
	}
	for _, em := range res.Emits {
		a.out.add(em.Sink, em.Row)
	}
	delete(a.states, key)
	a.unwritten.statesDeleted = append(a.unwritten.statesDeleted, key)
	return true
}
