package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	const (
		pass  = `{"Action":"run","Package":"p","Test":"TestA"}` + "\n" + `{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}` + "\n" + `{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}`
		fail  = `{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: got 2, want 3\n"}` + "\n" + `{"Action":"fail","Package":"p","Test":"TestB","Elapsed":0.2}`
		skip  = `{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:4: needs Kafka\n"}` + "\n" + `{"Action":"output","Package":"p","Test":"TestC","Output":"--- SKIP: TestC (0.00s)\n"}` + "\n" + `{"Action":"skip","Package":"p","Test":"TestC"}`
		pkgOK = `{"Action":"pass","Package":"p","Elapsed":1.5}`
		build = `{"ImportPath":"q [q.test]","Action":"build-output","Output":"q/x.go:3: undefined: y\n"}` + "\n" + `{"ImportPath":"q [q.test]","Action":"build-fail"}`
	)
	tests := []struct {
		name      string
		in        string
		allowSkip string
		code      int
		contains  []string
	}{
		{name: "all pass", in: pass + "\n" + pkgOK, code: 0, contains: []string{"ok\tp\t1.5s", "1 passed, 0 failed, 0 skipped"}},
		{name: "a failure shows its output", in: pass + "\n" + fail, code: 1, contains: []string{"--- FAIL: p TestB", "got 2, want 3", "1 passed, 1 failed, 0 skipped"}},
		{name: "a skip fails", in: pass + "\n" + skip, code: 1, contains: []string{"SKIP p TestC: c_test.go:4: needs Kafka", "1 passed, 0 failed, 1 skipped", "every test must run"}},
		{name: "a skip allowed by its reason", in: skip, allowSkip: "needs Kafka", code: 0, contains: []string{"0 passed, 0 failed, 1 skipped"}},
		{name: "a skip for another reason fails", in: skip, allowSkip: "-short", code: 1, contains: []string{"1 tests skipped"}},
		{name: "a build failure", in: build, code: 1, contains: []string{"FAIL\tq [q.test] [build failed]", "undefined: y", "failed packages: q [q.test]"}},
		{name: "plain text passes through", in: "no Go files in /x\n" + pass, code: 0, contains: []string{"no Go files in /x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			s, err := summarize(strings.NewReader(tc.in), &out)
			if err != nil {
				t.Fatal(err)
			}
			if code := s.report(&out, tc.allowSkip); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			for _, c := range tc.contains {
				if !strings.Contains(out.String(), c) {
					t.Errorf("output lacks %q:\n%s", c, out.String())
				}
			}
		})
	}
}
