package actors

import "github.com/eddy-stream/eddy/scripting"

// addJoined adds record i of m to its key's join state (scripting/join.go):
// the rows it pairs into go out with the hooks' rows, and a record too late
// for its window (or interval, or retention) goes to the late output as
// windows' do. A record the join can't take (an until field that is not a
// time) is an error for it alone.
func (a *KeyedAggregator) addJoined(k *scripting.Keyed, m *keyedBatch, i int) error {
	st := a.state(k.Key)
	res, late, err := a.rt.JoinRecord(st.ks, k.Key, k.Rec, k.Time, a.watermark)
	a.afterHook(k.Key, st, res) // (forgets a key left empty)
	if late > 0 {
		a.late(m, i, k.Time, late)
	}
	return err
}

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
