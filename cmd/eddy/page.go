package main

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/scripting"
)

// What the web page (statusapi's GET /, /pipeline, /checkpoints,
// /deadletters) asks of a run beyond its status and state.

// describe says what a run runs, for GET /pipeline: the URIs it opened
// (flags applied, secrets masked) and the settings that shape it.
func describe(p *scripting.Pipeline, cfg actors.Config, srcURI string, sinks *sinkSet) statusapi.PipelineInfo {
	info := statusapi.PipelineInfo{Name: p.Name, Script: p.File, Source: maskURI(srcURI), Sinks: map[string]string{}}
	named := map[string]connectors.Sink{"results": cfg.Results, "records": cfg.Records, "late": cfg.Late, "dead_letter": cfg.DeadLetters}
	for name, s := range cfg.Outputs {
		named[name] = s
	}
	for name, s := range named {
		if uri := sinks.uriOf(s); uri != "" {
			info.Sinks[name] = maskURI(uri)
		}
	}
	set := func(name, value string) {
		if value != "" {
			info.Settings = append(info.Settings, statusapi.Setting{Name: name, Value: value})
		}
	}
	set("node", cfg.Node)
	set("format", p.Format)
	set("key", strings.Join(p.KeyColumns, ", "))
	set("aggregates", aggregates(p.Aggregates))
	set("order by", orderBy(p.OrderBy))
	if p.Limit > 0 {
		set("limit", fmt.Sprint(p.Limit))
	}
	if p.HasAggregate() {
		set("emit", p.Last().Emit)
	}
	if w := p.Window; w != nil {
		set("window", windowText(w))
	}
	for _, st := range p.Stages {
		set(fmt.Sprintf("stage %d", st.Stage()), stageText(st))
	}
	set("trigger interval", cfg.TriggerInterval.String())
	set("checkpoint interval", cfg.CheckpointInterval.String())
	if cfg.Shards > 0 {
		set("shards", fmt.Sprint(cfg.Shards))
	}
	if cfg.Workers > 0 {
		set("workers", fmt.Sprint(cfg.Workers))
	}
	return info
}

// stageText describes a later stage: its key, window and aggregates.
func stageText(p *scripting.Pipeline) string {
	out := "key " + strings.Join(p.KeyColumns, ", ")
	if p.Window != nil {
		out += "; window " + windowText(p.Window)
	}
	return out + "; " + aggregates(p.Aggregates)
}

func aggregates(aggs []scripting.AggSpec) string {
	var out []string
	for _, a := range aggs {
		arg := a.Field
		if a.By != "" {
			arg += " by " + a.By
		}
		out = append(out, fmt.Sprintf("%s = %s(%s)", a.Name, a.Func, arg))
	}
	return strings.Join(out, ", ")
}

func orderBy(order []scripting.Order) string {
	var out []string
	for _, o := range order {
		if o.Desc {
			out = append(out, o.Column+" desc")
		} else {
			out = append(out, o.Column)
		}
	}
	return strings.Join(out, ", ")
}

func windowText(w *scripting.Window) string {
	switch w.Kind {
	case "hopping":
		return fmt.Sprintf("hopping %s every %s", w.Size, w.Slide)
	case "session":
		return fmt.Sprintf("session, gap %s", w.Gap)
	case "join":
		return "each joined row's: the join window, or its left record's interval"
	}
	return fmt.Sprintf("%s %s", w.Kind, w.Size)
}

// uriOf is the URI s was opened with, "" for a sink not opened here.
func (s *sinkSet) uriOf(k connectors.Sink) string {
	if k == nil || !reflect.TypeOf(k).Comparable() {
		return ""
	}
	uris := make([]string, 0, len(s.byURI))
	for uri := range s.byURI {
		uris = append(uris, uri)
	}
	sort.Strings(uris)
	for _, uri := range uris {
		if s.byURI[uri] == k {
			return uri
		}
	}
	return ""
}

// secretParams name the URI parameters whose values the page never
// shows (a parameter naming a file of one, such as password-file, shows).
var secretParams = []string{"password", "secret", "token"}

// maskURI hides a URI's secrets: the password of USER:PASSWORD@ and the
// values of parameters named like one.
func maskURI(uri string) string {
	t, err := connectors.Parse(uri)
	if err != nil {
		return "(a URI that does not parse)"
	}
	if user, _, ok := strings.Cut(t.Host, "@"); ok && strings.Contains(user, ":") {
		name, _, _ := strings.Cut(user, ":")
		uri = strings.Replace(uri, user+"@", name+":***@", 1)
	}
	base, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	params := strings.Split(query, "&")
	for i, kv := range params {
		name, _, _ := strings.Cut(kv, "=")
		lower := strings.ToLower(name)
		for _, secret := range secretParams {
			if strings.Contains(lower, secret) && !strings.HasSuffix(lower, "-file") {
				params[i] = name + "=***"
			}
		}
	}
	return base + "?" + strings.Join(params, "&")
}

func (l *lateLocal) Pipeline() (statusapi.PipelineInfo, bool) {
	if info := l.info.Load(); info != nil {
		return *info, true
	}
	return statusapi.PipelineInfo{}, false
}

func (l *lateLocal) Checkpoints() []actors.CheckpointRecord {
	if h := l.h.Load(); h != nil {
		return h.Checkpoints()
	}
	return []actors.CheckpointRecord{}
}

func (l *lateLocal) DeadLetters() []actors.DeadLetter {
	if h := l.h.Load(); h != nil {
		return h.DeadLetters()
	}
	return []actors.DeadLetter{}
}
