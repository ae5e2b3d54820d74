package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/internal/testenv"
)

// TestKafkaTableJoinSurvivesKill: an eddy run joining orders to a users
// table kept in --state is killed with SIGKILL mid-work (the table's
// Badger files as the kill leaves them, never closed); the table changes
// while it is down; the restart reads only those changes from the topic
// (the log's records=5) and joins every order it processes to the changed
// table. Every order comes out, each joined exactly as the reference joins
// it to the table of its run.
func TestKafkaTableJoinSurvivesKill(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic, cl := tableTopic(t, brokers)
	before := usersTable{}
	var keys []string
	var rows []map[string]any
	for i := range 400 {
		keys = append(keys, fmt.Sprintf("u%d", i%100))
		if i%9 == 4 {
			rows = append(rows, nil)
		} else {
			rows = append(rows, map[string]any{"name": fmt.Sprintf("name%d", i), "tier": []string{"gold", "silver"}[i%2]})
		}
	}
	before.write(t, cl, topic, keys, rows)

	dir := t.TempDir()
	generated := filepath.Join(dir, "generated")
	if err := os.Mkdir(generated, 0o755); err != nil {
		t.Fatal(err)
	}
	const files, perFile = 6, 3000
	var orders []order
	for f := range files {
		var part []order
		for i := f * perFile; i < (f+1)*perFile; i++ {
			part = append(part, order{ID: i, User: fmt.Sprintf("u%d", (i*7)%110), Amount: float64(i) / 4})
		}
		writeOrders(t, filepath.Join(generated, fmt.Sprintf("part-%04d.jsonl", f)), part)
		orders = append(orders, part...)
	}
	box := newInbox(t, generated)
	tableURI := "kafka://" + strings.Join(brokers, ",") + "/" + topic
	script := ordersScript(t, dir, tableURI, "left")
	args := []string{"run", script, "--source", "dir:" + box.dir, "--state", filepath.Join(dir, "state"), "--checkpoint-interval", "200ms", "--trigger-interval", "100ms"}

	// Run 1: killed after a checkpoint, part-way into its second file.
	box.publish(t, 1)
	r := startLive(t, args...)
	r.waitFor(t, "a checkpoint", func() bool { return r.lastCheckpoint() > 0 })
	read := r.waitRead(t, 0)
	box.publish(t, 1)
	r.waitRead(t, read+perFile/2)
	r.kill(t)
	out1 := r.stdout.String()

	// While it is down: an update, two tombstones, two new users.
	after := usersTable{}
	for k, v := range before {
		after[k] = v
	}
	after.write(t, cl, topic, []string{"u1", "u3", "u5", "u105", "u106"}, []map[string]any{
		{"name": "renamed", "tier": "platinum"}, nil, nil, {"name": "new105", "tier": "gold"}, {"name": "new106", "tier": "silver"}})

	// Run 2: the rest of the orders, to the end.
	box.publish(t, files)
	r = startLive(t, append(args, "--until-idle")...)
	<-r.exited
	if !r.cmd.ProcessState.Success() {
		t.Fatalf("the restart failed: %v\n%s", r.cmd.ProcessState, r.tail())
	}
	if m := tableRead.FindStringSubmatch(r.tail()); m == nil || m[1] != fmt.Sprint(len(after)) || m[2] != "5" {
		t.Fatalf("restart: no 'kafka table read rows=%d records=5' (the 5 records written while it was down) in its log:\n%s", len(after), r.tail())
	}

	byID := map[int]order{}
	for _, o := range orders {
		byID[o.ID] = o
	}
	seen := map[int]bool{}
	check := func(run string, out string, table usersTable) {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for i, line := range lines {
			var got map[string]any
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				if run == "the killed run" && i == len(lines)-1 {
					continue // its last line, cut by the kill
				}
				t.Fatalf("%s: %q: %v", run, line, err)
			}
			id := int(got["order"].(float64))
			want := joinOrders([]order{byID[id]}, table, true)[0]
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: order %d joined as %v, want %v", run, id, got, want)
			}
			seen[id] = true
		}
	}
	check("the killed run", out1, before)
	n1 := len(seen)
	check("the restart", r.stdout.String(), after)
	t.Logf("the killed run put out %d orders, the restart the other %d and some again", n1, len(seen)-n1)
	for _, o := range orders {
		if !seen[o.ID] {
			t.Fatalf("order %d never came out", o.ID)
		}
	}
}
