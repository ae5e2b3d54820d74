package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Where services/*.sh make their servers listen (the values of services/env.sh).
const (
	localKafka     = "127.0.0.1:9092"
	localCassandra = "127.0.0.1:9042"
	localMySQL     = "eddy:eddy@tcp(127.0.0.1:3306)/eddy"
)

// localCache is the .cache folder of the checkout this package was built
// from, where services/*.sh record their pids; tests point it elsewhere.
var localCache = func() string {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Join(filepath.Dir(self), "..", "..", ".cache")
}()

// localServer reports whether `just <server>-up` of this checkout has a
// server running: the pid it recorded in .cache is alive and its command line
// holds marker. It lets `just services-up && go test ./...` run the server
// tests without sourcing services/env.sh first; a pid file left over from a
// machine that was stopped does not count, so those tests then skip.
func localServer(pidfile, marker string) (pid int, ok bool) {
	if localCache == "" {
		return 0, false
	}
	b, err := os.ReadFile(filepath.Join(localCache, pidfile))
	if err != nil {
		return 0, false
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmd, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || !strings.Contains(string(cmd), marker) {
		return 0, false
	}
	return pid, true
}
