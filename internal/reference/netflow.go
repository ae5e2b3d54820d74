// Package reference computes the seed pipelines' answers in plain Go,
// independently of eddy (encoding/json, no Lua, no actors), for tests to
// compare eddy's output with.
package reference

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// NetflowCounts counts, per dstdevice, the flows of seed 003 whose dstport
// is 80 or 443 (as a string or a number); lines that are not JSON objects
// with a string dstdevice are skipped.
func NetflowCounts(lines [][]byte) map[string]int64 {
	counts := map[string]int64{}
	for _, l := range lines {
		addFlow(counts, l)
	}
	return counts
}

func addFlow(counts map[string]int64, line []byte) {
	var rec map[string]any
	if json.Unmarshal(line, &rec) != nil {
		return
	}
	dev, ok := rec["dstdevice"].(string)
	if !ok {
		return
	}
	switch p := rec["dstport"].(type) {
	case string:
		if p == "80" || p == "443" {
			counts[dev]++
		}
	case float64:
		if p == 80 || p == 443 {
			counts[dev]++
		}
	}
}

// NetflowCountsDir is NetflowCounts over every part-* file of dir.
func NetflowCountsDir(dir string) (map[string]int64, error) {
	counts := map[string]int64{}
	files, _ := filepath.Glob(filepath.Join(dir, "part-*"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			addFlow(counts, sc.Bytes())
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// Top renders the n largest counts as the netflow script's result lines,
// {"dstdevice":…,"count":…}, count descending, ties by dstdevice.
func Top(counts map[string]int64, n int) string {
	devs := make([]string, 0, len(counts))
	for d := range counts {
		devs = append(devs, d)
	}
	sort.Slice(devs, func(i, j int) bool {
		if counts[devs[i]] != counts[devs[j]] {
			return counts[devs[i]] > counts[devs[j]]
		}
		return devs[i] < devs[j]
	})
	var sb strings.Builder
	for _, d := range devs[:min(n, len(devs))] {
		fmt.Fprintf(&sb, "{\"dstdevice\":%q,\"count\":%d}\n", d, counts[d])
	}
	return sb.String()
}
