// Package docs holds eddy's documentation; its test runs every example
// pipeline in pipelines.md on the real engine.
package docs

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/internal/pipetest"
	"github.com/eddy-stream/eddy/scripting"
)

var example = regexp.MustCompile("(?s)```lua\n-- example: (\\w+)\n(.*?)```")

func TestPipelineExamples(t *testing.T) {
	var md []byte
	for _, name := range []string{"pipelines.md", "event-time.md"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		md = append(md, b...)
	}
	found := example.FindAllSubmatch(md, -1)
	if len(found) < 8 {
		t.Fatalf("found %d examples in the docs, want at least 8", len(found))
	}
	for _, m := range found {
		name, src := string(m[1]), m[2]
		t.Run(name, func(t *testing.T) {
			p, err := scripting.LoadSource(name+".lua", src)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Tests) == 0 {
				t.Fatal("example has no tests")
			}
			results, err := pipetest.Run(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				if !r.Passed() {
					t.Errorf("%s:\n%s", r.Name, strings.Join(r.Failures, "\n"))
				}
			}
		})
	}
}
