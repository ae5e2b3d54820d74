package scripting

import (
	"cmp"
	"slices"
)

// Session-window joins. join = eddy.join{ …, window = eddy.session(gap) }
// pairs the records of a key that fall in the same session: a run of the
// key's records of both sides, each at most gap after the one before, as
// a session window over both streams together (Flink's session window
// join). A session's bounds are its first record's time and its last's
// plus gap, as eddy's session windows are.
//
// A record may still join two sessions into one until the watermark has
// passed its last record by gap, so a session's rows all come out when it
// closes: the watermark past its end (plus allowed_lateness). A record
// behind the watermark by more than allowed_lateness is late: a session it
// could have reached may have closed. (A record at the watermark is on
// time, as for windows; so a session closes only once the watermark is
// past its end, not at it.)
// Each key's waiting records are the join state's two sides, as for the
// other joins (JoinRec.T their time; W unused); its one expiry timer is
// at the earliest end of its open sessions, or sooner.

func (j *Join) isSession() bool { return j.Window != nil && j.Window.Kind == "session" }

// joinSessionRecord adds a record to its key's waiting records, or counts
// it late. Nothing pairs before its session closes.
func (rt *Runtime) joinSessionRecord(ks *KeyState, rec map[string]any, ms, watermark int64) (res HookResult, late int, err error) {
	j := rt.p.Join
	lateness := rt.p.AllowedLateness.Milliseconds()
	if ms+lateness < watermark {
		return res, 1, nil
	}
	if ks.Join == nil {
		ks.Join = &JoinState{}
	}
	s := j.side(rec)
	ks.Join.Sides[s] = append(ks.Join.Sides[s], JoinRec{T: ms, Rec: rec})
	// The record's session ends at ms+gap at the earliest (later if it
	// joins a session that goes on after it).
	res.TimersChanged = setExpiryTimer(ks, closesAt(ms+j.Window.Gap.Milliseconds(), lateness))
	return res, 0, nil
}

// closesAt is the watermark that closes a session ending at end: past it
// by more than lateness, so that a record that could still reach it is
// late.
func closesAt(end, lateness int64) int64 { return end + lateness + 1 }

// session is one session of a key's waiting records: its bounds and its
// records of each side, in the order they came.
type session struct {
	start, end int64
	sides      [2][]*JoinRec
}

// sessions splits a key's waiting records into sessions, in time order;
// each side's records in a session stay in the order they came.
func (j *Join) sessions(js *JoinState) []*session {
	type member struct {
		t    int64
		s, i int
	}
	var all []member
	for s := range js.Sides {
		for i, r := range js.Sides[s] {
			all = append(all, member{r.T, s, i})
		}
	}
	slices.SortFunc(all, func(a, b member) int { return cmp.Compare(a.t, b.t) })
	gap := j.Window.Gap.Milliseconds()
	in := [2][]int{make([]int, len(js.Sides[0])), make([]int, len(js.Sides[1]))} // each record's session
	var out []*session
	for _, m := range all {
		if len(out) == 0 || m.t > out[len(out)-1].end {
			out = append(out, &session{start: m.t})
		}
		out[len(out)-1].end = m.t + gap
		in[m.s][m.i] = len(out) - 1
	}
	for s := range js.Sides {
		for i := range js.Sides[s] {
			ses := out[in[s][i]]
			ses.sides[s] = append(ses.sides[s], &js.Sides[s][i])
		}
	}
	return out
}

// sessionTimer emits the rows of the sessions that closed by at (the
// timer's time) and drops their records, and sets the expiry timer to the
// earliest end of those left.
func (rt *Runtime) sessionTimer(ks *KeyState, key string, at int64) HookResult {
	res := HookResult{TimersChanged: true}
	if ks.Join == nil {
		return res
	}
	j := rt.p.Join
	lateness := rt.p.AllowedLateness.Milliseconds()
	var kept JoinState
	for _, ses := range j.sessions(ks.Join) {
		if closesAt(ses.end, lateness) > at {
			for s := range ses.sides {
				for _, r := range ses.sides[s] {
					kept.Sides[s] = append(kept.Sides[s], *r)
				}
			}
			setExpiryTimer(ks, closesAt(ses.end, lateness))
			continue
		}
		res.Emits = rt.sessionRows(res.Emits, key, ses)
	}
	ks.Join = &kept
	if len(kept.Sides[0])+len(kept.Sides[1]) == 0 {
		ks.Join = nil
	}
	return res
}

// sessionRows appends a closed session's rows: each pair of its left and
// right records; for an outer kind, a side's records alone when the other
// side has none in it; for a semi join, its left records when it has a
// right one.
func (rt *Runtime) sessionRows(dst []Emit, key string, ses *session) []Emit {
	j := rt.p.Join
	win := [2]int64{ses.start, ses.end}
	add := func(s int, r, o *JoinRec) {
		dst = append(dst, Emit{Sink: "records", Row: rt.joined(key, s, r, o, win), Window: win})
	}
	left, right := ses.sides[0], ses.sides[1]
	switch {
	case j.Kind == "semi":
		if len(right) > 0 {
			for _, l := range left {
				add(0, l, nil)
			}
		}
	case len(left) > 0 && len(right) > 0:
		for _, l := range left {
			for _, r := range right {
				add(0, l, r)
			}
		}
	default:
		for s := range ses.sides {
			if j.outer(s) {
				for _, r := range ses.sides[s] {
					add(s, r, nil)
				}
			}
		}
	}
	return dst
}
