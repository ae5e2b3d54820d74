package scripts_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	_ "github.com/eddy-stream/eddy/connectors/all"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
	eddymysql "github.com/eddy-stream/eddy/connectors/mysql"
	"github.com/eddy-stream/eddy/internal/testenv"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// serverLogsEnv is seed 001's world on the real servers: a users database
// and a logs database of the test's own, loaded from scripts/server_logs.sql,
// and, when Kafka runs, a topic for the statuses.
type serverLogsEnv struct {
	users, logs *sql.DB
	usersDB     string
	logsDB      string
	prefix      string // mysql://user@host:port
	brokers     []string
	topic       string
}

func newServerLogsEnv(t *testing.T) *serverLogsEnv {
	t.Helper()
	server := testenv.MySQL(t)
	e := &serverLogsEnv{}
	usersDSN := testenv.NewDatabase(t, server)
	logsDSN := testenv.NewDatabase(t, server)
	ucfg, _ := mysql.ParseDSN(usersDSN)
	lcfg, _ := mysql.ParseDSN(logsDSN)
	e.usersDB, e.logsDB = ucfg.DBName, lcfg.DBName
	e.prefix = "mysql://" + ucfg.User + "@" + ucfg.Addr
	t.Setenv(eddymysql.PasswordEnv, ucfg.Passwd)
	e.users, e.logs = testenv.OpenMySQL(t, usersDSN), testenv.OpenMySQL(t, logsDSN)
	schema, err := os.ReadFile("server_logs.sql")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("dim_users.", e.usersDB+".", "server_logs.", e.logsDB+".").Replace(string(schema))
	for _, stmt := range sqlStatements(text) {
		if strings.HasPrefix(stmt, "CREATE DATABASE") {
			continue
		}
		if _, err := e.users.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	// Kafka is optional: without it the statuses go to memory.
	t.Run("kafka", func(t *testing.T) { e.brokers = testenv.Kafka(t) })
	if e.brokers != nil {
		e.topic = testenv.NewTopic(t, e.brokers, 1)
	}
	return e
}

// load reads scripts/server_logs.lua with its lookup pointed at the test's
// users table.
func (e *serverLogsEnv) load(t *testing.T, logger *slog.Logger) *scripting.Pipeline {
	t.Helper()
	src, err := os.ReadFile("server_logs.lua")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(src), "mysql://eddy@127.0.0.1:3306/dim_users/users", e.prefix+"/"+e.usersDB+"/users")
	p, err := scripting.LoadSource("server_logs.lua", []byte(text), scripting.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// outputs opens the script's named sinks on the test's databases and topic
// (a MemSink for the statuses when Kafka does not run).
func (e *serverLogsEnv) outputs(t *testing.T, p *scripting.Pipeline) (map[string]connectors.Sink, *connectortest.MemSink) {
	t.Helper()
	out := map[string]connectors.Sink{}
	var mem *connectortest.MemSink
	for _, name := range []string{"good", "suspicious", "bad", "status"} {
		uri := p.Sinks[name]
		switch {
		case name == "status" && e.brokers == nil:
			mem = &connectortest.MemSink{}
			out[name] = mem
			continue
		case name == "status":
			uri = "kafka://" + strings.Join(e.brokers, ",") + "/" + e.topic
		default:
			uri = strings.Replace(uri, "mysql://eddy@127.0.0.1:3306/server_logs/", e.prefix+"/"+e.logsDB+"/", 1)
		}
		s, err := connectors.OpenSink(uri)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = s
	}
	return out, mem
}

// expected classifies logs [0, count) of gen:serverlogs in plain Go.
func expectedLogs(t *testing.T, seed, count int64, bad float64) []logClass {
	t.Helper()
	users := map[string]string{}
	for _, u := range gen.ServerLogUsers() {
		users[strconv.FormatInt(u.AccountID, 10)] = u.Device
	}
	var buf bytes.Buffer
	if err := gen.Write(&buf, "serverlogs", seed, 0, count, bad); err != nil {
		t.Fatal(err)
	}
	var out []logClass
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		out = append(out, classifyLog(line, users))
	}
	return out
}

// check compares every table, the topic and the counts with want.
func (e *serverLogsEnv) check(t *testing.T, want []logClass, status *connectortest.MemSink, results *connectortest.MemSink) {
	t.Helper()
	byStatus := map[string][]string{}
	var topic []string
	seenRaw := map[string]bool{}
	counts := map[string]int64{}
	for _, c := range want {
		counts[c.status]++
		topic = append(topic, c.topicJSON())
		if c.status == "bad" {
			if seenRaw[c.raw] {
				continue // the table keys bad logs by their text
			}
			seenRaw[c.raw] = true
		}
		byStatus[c.status] = append(byStatus[c.status], c.row())
	}
	cols := "request_id, `timestamp`, account_id, device, ip, method, request, status_code, bytes, status, COALESCE(reason, '')"
	sameLines(t, "good_logs", byStatus["good"], tableRows(t, e.logs, "SELECT "+cols+" FROM good_logs"))
	sameLines(t, "suspicious_logs", byStatus["suspicious"], tableRows(t, e.logs, "SELECT "+cols+" FROM suspicious_logs"))
	sameLines(t, "bad_logs", byStatus["bad"], tableRows(t, e.logs, "SELECT raw, reason, status FROM bad_logs"))
	var got []string
	if status != nil {
		for _, r := range status.Rows() {
			got = append(got, canonicalJSON(t, connectors.AppendJSON(nil, r)))
		}
	} else {
		got = readTopic(t, e.brokers, e.topic, len(want))
	}
	sameLines(t, "topic server-logs-status", topic, got)
	final := map[string]int64{}
	for _, r := range results.Rows() {
		s, _ := r.Get("status")
		n, _ := r.Get("logs")
		final[s.(string)] = n.(int64)
	}
	for s, n := range counts {
		if final[s] != n {
			t.Errorf("running count of %s: %d, want %d (all: %v)", s, final[s], n, final)
		}
	}
	t.Logf("%d logs: %v", len(want), counts)
}

// readTopic reads n records of topic from the start, as canonical JSON.
func readTopic(t *testing.T, brokers []string, topic string, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []string
	for len(out) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, canonicalJSON(t, r.Value)) })
	}
	// Anything beyond n is a duplicate: give it a moment to show.
	short, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	cl.PollFetches(short).EachRecord(func(r *kgo.Record) { out = append(out, canonicalJSON(t, r.Value)) })
	return out
}

// logBuffer collects a run's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	os.Stderr.Write(p)
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestServerLogsEndToEnd(t *testing.T) {
	e := newServerLogsEnv(t)
	const seed, count, bad = 11, 30000, 0.01
	p := e.load(t, slog.New(slog.NewTextHandler(io.Discard, nil)))
	outputs, mem := e.outputs(t, p)
	src, err := connectors.OpenSource("gen:serverlogs?count=30000&seed=11&bad=0.01", nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	results, dead := &connectortest.MemSink{}, &connectortest.MemSink{}
	sum, err := actors.Run(context.Background(), actors.Config{Pipeline: p, Source: src, Store: store,
		Results: results, DeadLetters: dead, Outputs: outputs, MaxErrors: 0, Shards: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead.Rows()) > 0 {
		e, _ := dead.Rows()[0].Get("error")
		t.Fatalf("%d dead letters, first: %v", len(dead.Rows()), e)
	}
	if sum.Read != count {
		t.Fatalf("read %d logs, want %d", sum.Read, count)
	}
	e.check(t, expectedLogs(t, seed, count, bad), mem, results)
}
