package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	driver "github.com/go-sql-driver/mysql"
)

// PasswordEnv is the environment variable the password is read from when
// the URI has no ?password-file.
const PasswordEnv = "EDDY_MYSQL_PASSWORD"

// location is where a mysql:// URI points: server, database and table.
type location struct {
	user, addr, db, table string
}

// String renders the location without any secret, for errors and logs.
func (l location) String() string {
	return "mysql://" + l.user + "@" + l.addr + "/" + l.db + "/" + l.table
}

// parseLocation reads USER@HOST:PORT/DB/TABLE from t.
func parseLocation(t connectors.Target) (location, error) {
	var l location
	user, addr, ok := strings.Cut(t.Host, "@")
	if !ok {
		user, addr = "", t.Host
	}
	if strings.Contains(user, ":") {
		return l, fmt.Errorf("mysql: a password in the URI is refused (it would show in process lists and logs): set %s or ?password-file=PATH", PasswordEnv)
	}
	if user == "" {
		return l, fmt.Errorf("mysql: the URI names no user: write mysql://USER@HOST:PORT/DB/TABLE")
	}
	if addr == "" {
		return l, fmt.Errorf("mysql: the URI names no host: write mysql://USER@HOST:PORT/DB/TABLE")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "3306")
	}
	db, table, _ := strings.Cut(t.Path, "/")
	if db == "" || table == "" || strings.Contains(table, "/") {
		return l, fmt.Errorf("mysql: want mysql://USER@HOST:PORT/DB/TABLE, got path %q", t.Path)
	}
	return location{user: user, addr: addr, db: db, table: table}, nil
}

// password reads the password from ?password-file or EDDY_MYSQL_PASSWORD.
func password(t connectors.Target) (string, error) {
	if path := t.Params.Get("password-file"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("mysql: password-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return os.Getenv(PasswordEnv), nil
}

// quietLogger sends the driver's own messages (a lost connection's
// "unexpected EOF") to slog at debug: the sink logs retries itself.
type quietLogger struct{}

func (quietLogger) Print(v ...any) {
	slog.Debug("mysql driver: " + strings.TrimSpace(fmt.Sprint(v...)))
}

// openDB opens a pool on l with the password from t; it does not connect.
func openDB(l location, t connectors.Target, conns int) (*sql.DB, error) {
	pw, err := password(t)
	if err != nil {
		return nil, err
	}
	cfg := driver.NewConfig()
	cfg.User, cfg.Passwd = l.user, pw
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", l.addr, l.db
	cfg.Timeout = 5 * time.Second
	cfg.ReadTimeout, cfg.WriteTimeout = 60*time.Second, 60*time.Second
	cfg.InterpolateParams = true
	cfg.Logger = quietLogger{}
	if tls := t.Params.Get("tls"); tls != "" {
		cfg.TLSConfig = tls
	}
	c, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// explain turns a driver error into one that says what was wrong and where,
// without the password (the driver never prints it either).
func explain(l location, err error) error {
	var me *driver.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045:
			return fmt.Errorf("%s: access denied for user %q (check %s or ?password-file): %w", l, l.user, PasswordEnv, err)
		case 1049:
			return fmt.Errorf("%s: database %q does not exist: %w", l, l.db, err)
		case 1146:
			return fmt.Errorf("%s: table %s.%s does not exist: %w", l, l.db, l.table, err)
		case 1054:
			return fmt.Errorf("%s: unknown column: %w", l, err)
		}
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Errorf("%s: unknown host %q: %w", l, dns.Name, err)
	}
	return fmt.Errorf("%s: %w", l, err)
}

// transient says whether err may go away on its own: the server is down or
// restarting, the connection dropped, a lock wait or deadlock.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var me *driver.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 1152, 1159, 1161:
			return true
		}
		return false
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsTemporary
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrInvalidConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "bad connection") || strings.Contains(err.Error(), "connection refused")
}

// quote quotes a MySQL identifier.
func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }
