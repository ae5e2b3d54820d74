package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	driver "github.com/go-sql-driver/mysql"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/mysql"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// server is a database of the test's own on the real server, its pool, and
// the mysql:// prefix (user@host/db) that reaches it. The password goes to
// EDDY_MYSQL_PASSWORD, as a user would set it.
type server struct {
	db     *sql.DB
	prefix string
	name   string
}

func newServer(t testing.TB) server {
	t.Helper()
	dsn := testenv.NewDatabase(t, testenv.MySQL(t))
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(mysql.PasswordEnv, cfg.Passwd)
	return server{db: testenv.OpenMySQL(t, dsn), prefix: "mysql://" + cfg.User + "@" + cfg.Addr + "/" + cfg.DBName, name: cfg.DBName}
}

func (s server) exec(t testing.TB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := s.db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func openSink(t *testing.T, uri string) connectors.Sink {
	t.Helper()
	s, err := connectors.OpenSink(uri)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// query reads rows as strings (NULL as "NULL"), one line per row.
func query(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	return testenv.QueryRows(t, db, q, "NULL")
}

func TestConformance(t *testing.T) {
	srv := newServer(t)
	srv.exec(t, "CREATE TABLE results (id BIGINT AUTO_INCREMENT PRIMARY KEY, dstdevice VARCHAR(200), count BIGINT, ratio DOUBLE, web BOOLEAN) CHARACTER SET utf8mb4")
	connectortest.TestSink(t,
		func(t *testing.T) connectors.Sink { return openSink(t, srv.prefix+"/results") },
		func(t *testing.T) []connectors.Row {
			// Rows of different keys are written by different workers, so
			// the ids say in which order they committed, not in which they
			// were written: read them back in the order written.
			rows, err := srv.db.QueryContext(t.Context(), "SELECT dstdevice, count, ratio, web FROM results ORDER BY id")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []connectors.Row
			for rows.Next() {
				var dev string
				var count int64
				var ratio float64
				var web bool
				if err := rows.Scan(&dev, &count, &ratio, &web); err != nil {
					t.Fatal(err)
				}
				out = append(out, connectors.Row{Fields: []connectors.Field{{Name: "dstdevice", Value: dev}, {Name: "count", Value: count}, {Name: "ratio", Value: ratio}, {Name: "web", Value: web}}})
			}
			var ordered []connectors.Row
			for _, w := range connectortest.DefaultRows() {
				d, _ := w.Get("dstdevice")
				for _, r := range out {
					if g, _ := r.Get("dstdevice"); g == d {
						ordered = append(ordered, r)
					}
				}
			}
			if len(ordered) != len(out) {
				t.Errorf("table has %d rows, %d of them written", len(out), len(ordered))
			}
			return ordered
		},
		connectortest.SinkOptions{})
}

func row(fields ...any) connectors.Row {
	var r connectors.Row
	for i := 0; i < len(fields); i += 2 {
		r.Fields = append(r.Fields, connectors.Field{Name: fields[i].(string), Value: fields[i+1]})
	}
	return r
}

// TestUpsertReplayConverges writes rows, then replays an overlapping run
// with newer values, as a restart from a checkpoint does: the table holds
// each key once, with its last value.
func TestUpsertReplayConverges(t *testing.T) {
	srv := newServer(t)
	srv.exec(t, "CREATE TABLE users (account_id BIGINT PRIMARY KEY, device VARCHAR(40), seen INT, tags TEXT)")
	ctx := context.Background()
	s := openSink(t, srv.prefix+"/users?upsert=account_id&batch=2&concurrency=3")
	var first []connectors.Row
	for i := range 10 {
		first = append(first, row("account_id", int64(i), "device", "mobile", "seen", int64(1), "tags", []any{"a", int64(i)}))
	}
	if err := s.Write(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The replay starts at row 5 and updates rows 5..9, twice each, in order.
	var replay []connectors.Row
	for i := 5; i < 10; i++ {
		replay = append(replay, row("account_id", int64(i), "device", "tablet", "seen", int64(2), "tags", nil))
		replay = append(replay, row("account_id", int64(i), "device", "desktop", "seen", int64(3), "tags", map[string]any{"k": "v"}))
	}
	if err := s.Write(ctx, replay); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := query(t, srv.db, "SELECT account_id, device, seen, tags FROM users ORDER BY account_id")
	var want []string
	for i := range 10 {
		if i < 5 {
			want = append(want, fmt.Sprintf(`%d|mobile|1|["a",%d]`, i, i))
		} else {
			want = append(want, fmt.Sprintf(`%d|desktop|3|{"k":"v"}`, i))
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMapAndExtra(t *testing.T) {
	srv := newServer(t)
	srv.exec(t, "CREATE TABLE logs (id INT PRIMARY KEY, status_code INT)")
	ctx := context.Background()
	s := openSink(t, srv.prefix+"/logs?map=status:status_code&extra=ignore&upsert=id")
	if err := s.Write(ctx, []connectors.Row{row("id", int64(1), "status", int64(404), "junk", "x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := query(t, srv.db, "SELECT id, status_code FROM logs"); len(got) != 1 || got[0] != "1|404" {
		t.Fatalf("got %v", got)
	}
}

func TestErrors(t *testing.T) {
	srv := newServer(t)
	srv.exec(t, "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10))")
	u, _ := url.Parse(srv.prefix)
	user, host := u.User.Username(), u.Host
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("wrong-password\n"), 0o600)
	tests := []struct {
		name        string
		uri         string
		write       []connectors.Row
		errContains string
	}{
		{"password in the URI", "mysql://" + user + ":secret@" + host + "/" + srv.name + "/t", nil, "password in the URI is refused"},
		{"wrong password", srv.prefix + "/t?password-file=" + pwFile, nil, `access denied for user "` + user + `"`},
		{"unknown host", "mysql://" + user + "@no-such-host.invalid:3306/" + srv.name + "/t", nil, `unknown host "no-such-host.invalid"`},
		{"unknown database", "mysql://" + user + "@" + host + "/no_such_db_xyz/t", nil, `database "no_such_db_xyz" does not exist`},
		{"missing table", srv.prefix + "/nope", nil, "table " + srv.name + ".nope does not exist"},
		{"upsert key not a column", srv.prefix + "/t?upsert=uid", nil, `upsert key "uid" is not a column`},
		{"map to a missing column", srv.prefix + "/t?map=a:b", nil, `"b" is not a column`},
		{"bad path", "mysql://" + user + "@" + host + "/onlydb", nil, "want mysql://USER@HOST:PORT/DB/TABLE"},
		{"field with no column", srv.prefix + "/t", []connectors.Row{row("id", int64(1), "colour", "red")}, `field "colour" has no column in ` + srv.name + ".t"},
		{"duplicate key without upsert", srv.prefix + "/t", []connectors.Row{row("id", int64(1)), row("id", int64(1))}, "?upsert=COLUMN"},
		{"value too long", srv.prefix + "/t", []connectors.Row{row("id", int64(2), "name", strings.Repeat("x", 50))}, "Data too long for column 'name'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := connectortest.SinkError(tt.uri, tt.write)
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got error %v, want one containing %q", err, tt.errContains)
			}
			// The test server's password is the user's name, so look for
			// the wrong one the password file holds.
			if strings.Contains(err.Error(), "wrong-password") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	srv := newServer(t)
	srv.exec(t, "CREATE TABLE users (account_id INT PRIMARY KEY, device VARCHAR(20), score DOUBLE, note TEXT)",
		"INSERT INTO users VALUES (1, 'mobile', 0.5, NULL), (2, 'desktop', 2, 'x')")
	l, err := connectors.OpenLookup(srv.prefix+"/users", "account_id")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rows, err := l.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(rows["1"], rows["2"], len(rows))
	want := "map[account_id:1 device:mobile note:<nil> score:0.5] map[account_id:2 device:desktop note:x score:2] 2"
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	bad, err := connectors.OpenLookup(srv.prefix+"/users", "uid")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Load(context.Background()); err == nil || !strings.Contains(err.Error(), `key column "uid" is not a column`) {
		t.Fatalf("got %v", err)
	}
}
