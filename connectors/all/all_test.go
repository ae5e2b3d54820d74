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
	for _, uri := range []string{"stdout", "stderr", "file:" + dir + "/out.jsonl", "file:" + dir + "/out.csv"} {
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
