package statusapi

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/actors"
)

// pageEngine is a fake node that also describes its pipeline and keeps
// its checkpoints and dead letters.
type pageEngine struct {
	*engine
	info *PipelineInfo
}

func (p pageEngine) Pipeline() (PipelineInfo, bool) {
	if p.info == nil {
		return PipelineInfo{}, false
	}
	return *p.info, true
}

func (p pageEngine) Checkpoints() []actors.CheckpointRecord {
	return []actors.CheckpointRecord{{ID: 7, Time: time.Unix(1700000000, 0).UTC(), Duration: 12 * time.Millisecond, Keys: 3}}
}

func (p pageEngine) DeadLetters() []actors.DeadLetter {
	return []actors.DeadLetter{{Row: json.RawMessage(`{"error":"bad json","line":"x"}`)}}
}

// The page and the JSON only it reads: / and its assets, /pipeline,
// /checkpoints, /deadletters; a node that can't answer says so.
func TestPage(t *testing.T) {
	words := &engine{Partition: "kafka:words/0", Counts: map[string]int{"the": 3}}
	info := &PipelineInfo{Name: "wordcount", Script: "wc.lua", Source: "kafka://h:9092/words", Sinks: map[string]string{"results": "stdout"}}
	for _, tc := range []struct {
		name  string
		local Local
		path  string
		code  int
		// contains is what the body must hold.
		contains string
	}{
		{"the page", pageEngine{words, info}, "/", 200, `<script src="/web/page.js">`},
		{"its script", pageEngine{words, info}, "/web/page.js", 200, `fetchJSON("/pipeline"`},
		{"its style", pageEngine{words, info}, "/web/page.css", 200, "#chart"},
		{"no other page", pageEngine{words, info}, "/nope", 404, ""},
		{"pipeline", pageEngine{words, info}, "/pipeline", 200, `"source": "kafka://h:9092/words"`},
		{"pipeline while starting", pageEngine{words, nil}, "/pipeline", 503, "the pipeline is starting"},
		{"pipeline of a node that can't say", words, "/pipeline", 404, "does not describe its pipeline"},
		{"checkpoints", pageEngine{words, info}, "/checkpoints", 200, `"duration_ns": 12000000`},
		{"dead letters", pageEngine{words, info}, "/deadletters", 200, `"error": "bad json"`},
		{"dead letters of a node that keeps none", words, "/deadletters", 404, "keeps no record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(New(tc.local, nil))
			defer srv.Close()
			code, body := get(t, srv, tc.path)
			if code != tc.code || !strings.Contains(body, tc.contains) {
				t.Fatalf("GET %s: %d, want %d with %q:\n%.400s", tc.path, code, tc.code, tc.contains, body)
			}
		})
	}
}
