package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eddy-stream/eddy/scripting"
)

// Reloading the script of a running pipeline. A new version whose state
// layout is the running one's (scripting.CheckReload) takes over at a
// checkpoint: once the checkpoint is complete, every partition restarts
// from it with the new script (as after a failure, but at once), so the
// records before the checkpoint were processed by the old script and the
// ones after it by the new one, never a record by both. What the old
// script did after the checkpoint's barrier is dropped with the old
// incarnations: their sink rows were held back until the barrier settled,
// and their state was never checkpointed. A version that fails to load,
// or changes the state layout, is refused and the old one goes on.

// Reload is a new version of the running pipeline's script, or the error
// that kept it from loading (Err; Pipeline is nil then). Why says what
// asked for it, for the log ("the file changed", "SIGHUP").
type Reload struct {
	Pipeline *scripting.Pipeline
	Err      error
	Why      string
}

// ScriptStatus is which version of the script runs, and how its reloads
// went.
type ScriptStatus struct {
	File     string    `json:"file"`
	Hash     string    `json:"hash"`
	LoadedAt time.Time `json:"loaded_at"`
	Reloads  int64     `json:"reloads"`
	Refused  int64     `json:"reloads_refused"`
	// LastRefused is why the last refused reload was refused.
	LastRefused string `json:"last_refused,omitempty"`
	// Pending is the hash of an accepted version waiting for its
	// checkpoint.
	Pending string `json:"pending,omitempty"`
}

// scriptState is the node's record of the running script.
type scriptState struct {
	loadedAt    time.Time
	lastRefused string
	// pending: an accepted version, applied after the next checkpoint
	pending *Reload
}

// pipeline is the script the run's runtimes are made from now
// (cfg.Pipeline until a reload).
func (e *engine) pipeline() *scripting.Pipeline {
	if p := e.script.Load(); p != nil {
		return p
	}
	return e.cfg.Pipeline
}

// setPipeline makes p the script new runtimes are made from.
func (e *engine) setPipeline(p *scripting.Pipeline) {
	e.scriptsMu.Lock()
	e.scripts = append(e.scripts, p)
	e.scriptsMu.Unlock()
	e.script.Store(p)
}

// interruptAll makes the script calls of every version the run loaded
// fail with cause (an old version's may still be running while its
// partitions restart).
func (e *engine) interruptAll(cause error) {
	e.scriptsMu.Lock()
	defer e.scriptsMu.Unlock()
	for _, p := range e.scripts {
		interrupt(p, cause)
	}
}

// reloadScript checks a new version against the running one: refused, it
// is logged and counted and the old one goes on; accepted, it waits for a
// checkpoint, which it asks for.
func (n *node) reloadScript(ctx actor.Context, m *Reload) {
	log, cur := n.e.cfg.Logger, n.e.pipeline()
	err := m.Err
	if err == nil {
		err = scripting.CheckReload(cur, m.Pipeline)
	}
	if err != nil {
		n.e.cfg.Stats.ReloadsRefused.Add(1)
		n.script.lastRefused = err.Error()
		log.Error("reload refused: "+err.Error()+"; the running script goes on", "why", m.Why, "running", short(cur.Hash))
		return
	}
	m.Pipeline.CarryOn(cur)
	if m.Pipeline.Hash == cur.Hash {
		if p := n.script.pending; p != nil {
			n.script.pending = nil
			log.Info("reload: the script is back to the running version; the one waiting for a checkpoint is dropped", "why", m.Why, "dropped", short(p.Pipeline.Hash))
			return
		}
		log.Info("reload: the script is unchanged", "why", m.Why, "hash", short(cur.Hash))
		return
	}
	if n.stopping || n.finished {
		log.Warn("reload not applied: the run is stopping", "why", m.Why, "hash", short(m.Pipeline.Hash))
		return
	}
	n.script.pending = m
	log.Info("reload accepted: the new script takes over at the next checkpoint", "why", m.Why, "hash", short(m.Pipeline.Hash))
	n.maybeTrigger(ctx, true)
}

// reloadDue says whether the checkpoint in settles with a reload waiting
// for it, and no partition in the middle of a restart (then it waits for
// the next).
func (n *node) reloadDue(in *inflight) bool {
	if n.script.pending == nil || in.b.epoch == 0 || in.b.final || n.stopping {
		return false
	}
	return !n.anyDown()
}

// applyReload swaps the script at complete checkpoint in: the emitter
// takes the new version first (its table holds portable values), then
// every partition restarts from the checkpoint with it. The partitions are
// not told the barrier settled: what they did since passing it is the old
// script's, and goes with their old incarnation.
func (n *node) applyReload(ctx actor.Context, in *inflight) {
	m := n.script.pending
	n.script.pending = nil
	n.e.setPipeline(m.Pipeline)
	if n.e.emitter != nil {
		ctx.Send(n.e.emitter, &swapScript{p: m.Pipeline})
	}
	var pids []*actor.PID
	for _, id := range n.partitionIDs() {
		p := n.parts[id]
		// (Until its new incarnation reports, it has read nothing.)
		p.status, p.since = partitionStatus{id: id}, 0
		pids = append(pids, p.pid)
	}
	if len(pids) > 0 {
		ctx.(actor.Supervisor).RestartChildren(pids...)
	}
	n.script.loadedAt = time.Now()
	n.e.cfg.Stats.Reloads.Add(1)
	n.e.cfg.Logger.Info("reloaded the script: records after checkpoint "+fmt.Sprint(in.b.epoch)+" are processed by the new version",
		"why", m.Why, "hash", short(m.Pipeline.Hash), "checkpoint", in.b.epoch, "partitions", len(pids))
}

// scriptStatus is the status of the running script.
func (n *node) scriptStatus() *ScriptStatus {
	p, st := n.e.pipeline(), n.e.cfg.Stats
	s := &ScriptStatus{File: p.File, Hash: p.Hash, LoadedAt: n.script.loadedAt, Reloads: st.Reloads.Load(),
		Refused: st.ReloadsRefused.Load(), LastRefused: n.script.lastRefused}
	if n.script.pending != nil {
		s.Pending = n.script.pending.Pipeline.Hash
	}
	return s
}

// short is a hash's first 12 digits, for the log.
func short(hash string) string { return hash[:min(12, len(hash))] }
