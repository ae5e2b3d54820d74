package statusapi

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"

	"github.com/eddy-stream/eddy/actors"
)

// The web page at / (eddy run --http): one HTML file, its style and its
// script, embedded so the page works with no network but the node's. It
// reads the same JSON a script would:
//
//	GET /pipeline     what runs: name, script, source, sinks, settings
//	GET /checkpoints  this node's latest complete checkpoints, newest first
//	GET /deadletters  this node's latest failed records, newest first
//
// plus /status and /state.
//
//go:embed web
var web embed.FS

// PipelineInfo describes what a node runs, for GET /pipeline.
type PipelineInfo struct {
	Name string `json:"name"`
	// Script is the path the pipeline was loaded from.
	Script string `json:"script"`
	// Source is the source's URI, Sinks each output's (results, records,
	// dead_letter, late and the named ones), with any secret masked.
	Source string            `json:"source"`
	Sinks  map[string]string `json:"sinks"`
	// Settings are what shapes the run (emit mode, intervals, key,
	// aggregates, window...), in the order to show them.
	Settings []Setting `json:"settings"`
}

// Setting is one named value of PipelineInfo.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Describer is a Local that says what it runs (GET /pipeline answers 503
// until it does).
type Describer interface {
	Pipeline() (PipelineInfo, bool)
}

// Recorder is a Local that keeps its latest checkpoints and dead letters
// (*actors.Handle is one).
type Recorder interface {
	Checkpoints() []actors.CheckpointRecord
	DeadLetters() []actors.DeadLetter
}

// addPage serves the web page and the JSON only it needs on mux.
func addPage(mux *http.ServeMux, local Local) {
	assets, _ := fs.Sub(web, "web")
	files := http.FileServerFS(assets)
	mux.Handle("GET /{$}", files)
	mux.Handle("GET /web/", http.StripPrefix("/web", files))
	mux.HandleFunc("GET /pipeline", func(w http.ResponseWriter, r *http.Request) {
		d, ok := local.(Describer)
		if !ok {
			http.Error(w, "this node does not describe its pipeline", http.StatusNotFound)
			return
		}
		info, ok := d.Pipeline()
		if !ok {
			http.Error(w, errStarting, http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, info)
	})
	recorded := func(get func(Recorder) any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			rec, ok := local.(Recorder)
			if !ok {
				http.Error(w, "this node keeps no record of its checkpoints and dead letters", http.StatusNotFound)
				return
			}
			writeJSON(w, get(rec))
		}
	}
	mux.HandleFunc("GET /checkpoints", recorded(func(r Recorder) any { return r.Checkpoints() }))
	mux.HandleFunc("GET /deadletters", recorded(func(r Recorder) any { return r.DeadLetters() }))
}

const errStarting = "the pipeline is starting"

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
