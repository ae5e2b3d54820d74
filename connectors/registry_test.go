package connectors

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	RegisterSource("checksrc", func(Target) (Source, error) {
		t.Fatal("Check opened a source")
		return nil, nil
	}, "group")
	RegisterSink("checksink", func(Target) (Sink, error) {
		t.Fatal("Check opened a sink")
		return nil, nil
	})
	for _, tc := range []struct {
		name, kind, uri, errContains string
	}{
		{"known source", "source", "checksrc://h:1/t?group=g", ""},
		{"unknown parameter", "source", "checksrc://h:1/t?grop=g", `source "checksrc://h:1/t?grop=g": unknown parameter grop (checksrc: knows group)`},
		{"unknown scheme", "source", "nosuch:x", `source "nosuch:x": unknown scheme "nosuch" (known: `},
		{"a sink is not a source", "source", "checksink", `unknown scheme "checksink"`},
		{"sink with no parameters", "sink", "checksink?x=1", "unknown parameter x (checksink: takes no parameters)"},
		{"no scheme", "sink", "out/results.jsonl", "has no scheme"},
		{"empty", "sink", "", "empty connector URI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.kind, tc.uri)
			switch {
			case tc.errContains == "" && err != nil:
				t.Fatalf("Check(%s, %q): %v", tc.kind, tc.uri, err)
			case tc.errContains != "" && (err == nil || !strings.Contains(err.Error(), tc.errContains)):
				t.Fatalf("Check(%s, %q) = %v, want an error containing %q", tc.kind, tc.uri, err, tc.errContains)
			}
		})
	}
}
