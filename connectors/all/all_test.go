package all_test

import (
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	_ "github.com/eddy-stream/eddy/connectors/all"
)

func TestSchemes(t *testing.T) {
	dir := t.TempDir()
	for _, uri := range []string{"dir:" + dir, "file:" + dir + "/x.log?wait=true", "gen:netflow", "gen:tshark", "stdin"} {
		s, err := connectors.OpenSource(uri, nil)
		if err != nil {
			t.Errorf("source %s: %v", uri, err)
			continue
		}
		s.Close()
	}
	for _, uri := range []string{"stdout", "stderr", "discard", "file:" + dir + "/out.jsonl", "file:" + dir + "/out.csv"} {
		s, err := connectors.OpenSink(uri)
		if err != nil {
			t.Errorf("sink %s: %v", uri, err)
			continue
		}
		s.Close()
	}
	_, err := connectors.OpenSource("nope:x", nil)
	if err == nil || !strings.Contains(err.Error(), "known: dir, file, gen, http, https, kafka, stdin") {
		t.Errorf("unknown scheme: %v", err)
	}
}

// Every connector declares its URI parameters: a misspelt or unknown one
// is refused with the list of the known ones, never ignored (issue 12:
// dir:in?max-file-per-trigger=1 was read as if it were dir:in).
func TestUnknownParams(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, uri   string
		sink        bool
		errContains string
	}{
		{"dir misspelt", "dir:" + dir + "?max-file-per-trigger=1", false,
			"unknown parameter max-file-per-trigger (dir: knows max-files-per-trigger, max-record-size, on-loss, poll)"},
		{"file", "file:" + dir + "/x.log?wait=true&form=end", false, "unknown parameter form (file: knows from, max-record-size, poll, wait)"},
		{"stdin", "stdin?poll=1s", false, "unknown parameter poll (stdin: knows max-record-size)"},
		{"gen", "gen:netflow?cuont=5", false, "unknown parameter cuont (gen: knows bad, count,"},
		{"kafka source", "kafka://127.0.0.1:9092/t?gruop=g", false, "unknown parameter gruop (kafka: knows batch, buffer, fetchers, group,"},
		{"dir bad on-loss", "dir:" + dir + "?on-loss=maybe", false, `on-loss="maybe" is not one of fail, warn`},
		{"dir bad max-record-size", "dir:" + dir + "?max-record-size=0", false, "parameter max-record-size 0 is outside the allowed range 1 B to 1.0 GiB"},
		{"file missing", "file:" + dir + "/nope.log", false, "file " + dir + "/nope.log does not exist (add ?wait=true to wait for it to appear, as tail -F does)"},
		{"stdout", "stdout?pretty=1", true, "unknown parameter pretty (stdout: takes no parameters)"},
		{"file sink", "file:" + dir + "/o.jsonl?append=1", true, "unknown parameter append (file: takes no parameters)"},
		{"kafka sink", "kafka://127.0.0.1:9092/t?exactly-one=true", true, "unknown parameter exactly-one (kafka: knows exactly-once, format,"},
		{"mysql sink", "mysql://u@127.0.0.1/db/t?upsret=id", true, "unknown parameter upsret (mysql: knows batch, concurrency,"},
		{"cassandra sink", "cassandra://127.0.0.1/ks/t?craete=true", true, "unknown parameter craete (cassandra: knows batch, clustering,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.sink {
				var s connectors.Sink
				if s, err = connectors.OpenSink(tt.uri); err == nil {
					s.Close()
				}
			} else {
				var s connectors.Source
				if s, err = connectors.OpenSource(tt.uri, nil); err == nil {
					s.Close()
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want an error containing %q", err, tt.errContains)
			}
		})
	}
	if _, err := connectors.OpenLookup("mysql://u@127.0.0.1/db/t?refersh=1m", "id"); err == nil || !strings.Contains(err.Error(), "unknown parameter refersh (mysql: knows password-file, tls)") {
		t.Fatalf("lookup: %v", err)
	}
	// An http source passes unknown parameters on to the API.
	if !connectors.Accepts("source", "https", "appid") || connectors.Accepts("source", "gen", "appid") {
		t.Fatal("Accepts")
	}
}
