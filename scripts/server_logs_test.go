package scripts_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite generated fixtures (scripts/server_logs.sql)")

// usersSQL renders the users table of gen.ServerLogUsers as the INSERT that
// scripts/server_logs.sql ends with.
func usersSQL() string {
	var b strings.Builder
	b.WriteString("INSERT INTO dim_users.users (account_id, name, device) VALUES\n")
	for i, u := range gen.ServerLogUsers() {
		sep := ",\n"
		if i == len(gen.ServerLogUsers())-1 {
			sep = "\nON DUPLICATE KEY UPDATE name = VALUES(name), device = VALUES(device);\n"
		}
		fmt.Fprintf(&b, "  (%d, '%s', '%s')%s", u.AccountID, u.Name, u.Device, sep)
	}
	return b.String()
}

const usersMarker = "-- The users gen:serverlogs refers to (gen.ServerLogUsers); `go test ./scripts -update` rewrites them.\n"

// TestServerLogsSQLHasTheGeneratorsUsers keeps the users in
// scripts/server_logs.sql equal to the generator's.
func TestServerLogsSQLHasTheGeneratorsUsers(t *testing.T) {
	data, err := os.ReadFile("server_logs.sql")
	if err != nil {
		t.Fatal(err)
	}
	head, _, ok := strings.Cut(string(data), usersMarker)
	if !ok {
		t.Fatalf("server_logs.sql lacks the line %q", usersMarker)
	}
	want := head + usersMarker + usersSQL()
	if *update {
		if err := os.WriteFile("server_logs.sql", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(data) != want {
		t.Fatal("server_logs.sql's users differ from gen.ServerLogUsers: run go test ./scripts -update")
	}
}

// sqlStatements splits a SQL file into statements, dropping comments.
func sqlStatements(text string) []string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	var out []string
	for _, s := range strings.Split(strings.Join(lines, "\n"), ";\n") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, strings.TrimSuffix(s, ";"))
		}
	}
	return out
}

// logClass is the independent, plain-Go classification of one log.
type logClass struct {
	status, reason string
	fields         map[string]any // the decoded log, numbers as json.Number
	raw            string
}

var logFields = []struct{ name, typ string }{
	{"request_id", "string"}, {"timestamp", "string"}, {"account_id", "integer"},
	{"device", "string"}, {"ip", "string"}, {"method", "string"},
	{"request", "string"}, {"status_code", "integer"}, {"bytes", "integer"},
}

func classifyLog(line string, users map[string]string) logClass {
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil || d.More() {
		return logClass{status: "bad", reason: "not a JSON object", raw: line}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return logClass{status: "bad", reason: "not a JSON object", raw: line}
	}
	for _, f := range logFields {
		x, present := m[f.name]
		switch {
		case !present:
			return logClass{status: "bad", reason: "field " + f.name + " is missing", raw: line}
		case x == nil:
			return logClass{status: "bad", reason: "field " + f.name + " is null", raw: line}
		}
		okType := false
		switch f.typ {
		case "string":
			_, okType = x.(string)
		case "integer":
			if n, isNum := x.(json.Number); isNum {
				_, err := n.Int64()
				okType = err == nil
			}
		}
		if !okType {
			return logClass{status: "bad", reason: "field " + f.name + " has the wrong type (want " + f.typ + ")", raw: line}
		}
	}
	c := logClass{fields: m, status: "good"}
	account := m["account_id"].(json.Number).String()
	switch dev, known := users[account]; {
	case !known:
		c.status, c.reason = "suspicious", "account "+account+" is not in the users table"
	case dev != m["device"]:
		c.status, c.reason = "suspicious", "device "+m["device"].(string)+" differs from the user's device "+dev
	}
	return c
}

// row renders a classified log as the line the table query yields.
func (c logClass) row() string {
	if c.status == "bad" {
		return strings.Join([]string{c.raw, c.reason, c.status}, "|")
	}
	parts := make([]string, 0, 11)
	for _, f := range logFields {
		parts = append(parts, fmt.Sprint(c.fields[f.name]))
	}
	return strings.Join(append(parts, c.status, c.reason), "|")
}

// topicJSON renders the record the status topic holds for the log, as
// canonical JSON (keys sorted).
func (c logClass) topicJSON() string {
	m := map[string]any{"status": c.status}
	if c.status == "bad" {
		m["raw"], m["reason"] = c.raw, c.reason
	} else {
		for k, v := range c.fields {
			m[k] = v
		}
		if c.reason != "" {
			m["reason"] = c.reason
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func canonicalJSON(t *testing.T, b []byte) string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	out, _ := json.Marshal(m)
	return string(out)
}

// tableRows reads a table's rows, each as "|"-joined text, sorted.
func tableRows(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	out := testenv.QueryRows(t, db, q, "")
	slices.Sort(out)
	return out
}

// sameLines fails t with the first difference of two sorted line sets.
func sameLines(t *testing.T, what string, want, got []string) {
	t.Helper()
	slices.Sort(want)
	slices.Sort(got)
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			t.Fatalf("%s: row %d differs:\n got  %s\n want %s", what, i, got[i], want[i])
		}
	}
	if len(want) != len(got) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
}
