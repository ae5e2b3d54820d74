package statusapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Entry is a running node as it registers itself on its machine, so that
// eddy status and eddy query find it without flags.
type Entry struct {
	Pipeline string `json:"pipeline"`
	PID      int    `json:"pid"`
	// HTTP is where the node serves status and state, reachable from this
	// machine.
	HTTP string `json:"http"`
	// Cluster names the node's cluster, empty when it runs alone.
	Cluster string    `json:"cluster,omitempty"`
	Started time.Time `json:"started"`
	// TokenFile is the node's --http-token-file, CAFile what its
	// certificate verifies against (HTTP is then https://): a client on
	// this machine that may read them needs no flags. The directory is
	// the user's own (0700), and holds the paths, not the secrets.
	TokenFile string `json:"token_file,omitempty"`
	CAFile    string `json:"ca_file,omitempty"`
}

// RuntimeDirEnv overrides where nodes register (tests, several users'
// sandboxes).
const RuntimeDirEnv = "EDDY_RUNTIME_DIR"

// RuntimeDir is the per-user directory of registered nodes:
// $EDDY_RUNTIME_DIR, else $XDG_RUNTIME_DIR/eddy, else eddy-UID in the
// temporary directory.
func RuntimeDir() string {
	if d := os.Getenv(RuntimeDirEnv); d != "" {
		return d
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "eddy")
	}
	return filepath.Join(os.TempDir(), "eddy-"+strconv.Itoa(os.Getuid()))
}

// Register records e (its PID defaults to this process's) in the runtime
// directory; remove takes it out again.
func Register(e Entry) (remove func(), err error) {
	if e.PID == 0 {
		e.PID = os.Getpid()
	}
	if e.Started.IsZero() {
		e.Started = time.Now()
	}
	dir := RuntimeDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s.%d.json", url.PathEscape(e.Pipeline), e.PID))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return func() { os.Remove(path) }, nil
}

// Running lists the nodes registered on this machine whose process still
// runs, of pipeline (every pipeline when ""), oldest first. Entries of
// processes that are gone are skipped and removed.
func Running(pipeline string) ([]Entry, error) {
	dir := RuntimeDir()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // removed meanwhile
		}
		var e Entry
		if json.Unmarshal(data, &e) != nil || e.PID <= 0 || e.HTTP == "" {
			continue
		}
		if !alive(e.PID) {
			os.Remove(f)
			continue
		}
		if pipeline == "" || e.Pipeline == pipeline {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Pipelines names the pipelines of entries, sorted, once each.
func Pipelines(entries []Entry) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range entries {
		if !seen[e.Pipeline] {
			seen[e.Pipeline] = true
			out = append(out, e.Pipeline)
		}
	}
	sort.Strings(out)
	return out
}

// Find returns the HTTP addresses of the registered nodes of pipeline
// (any pipeline when "", as long as only one runs), oldest first, and the
// pipeline's name.
func Find(pipeline string) ([]string, string, error) {
	entries, err := FindEntries(pipeline)
	if err != nil {
		return nil, "", err
	}
	addrs := make([]string, len(entries))
	for i, e := range entries {
		addrs[i] = e.HTTP
	}
	return addrs, entries[0].Pipeline, nil
}

// FindEntries is Find returning the nodes' entries.
func FindEntries(pipeline string) ([]Entry, error) {
	entries, err := Running(pipeline)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		if pipeline == "" {
			return nil, fmt.Errorf("no eddy run serves status on this machine (%s is empty): start one with --http HOST:PORT or --cluster-port, or give --http HOST:PORT of a node elsewhere", RuntimeDir())
		}
		others := ""
		if all, _ := Running(""); len(all) > 0 {
			others = " (running: " + strings.Join(Pipelines(all), ", ") + ")"
		}
		return nil, fmt.Errorf("no eddy run of pipeline %q serves status on this machine%s: give --http HOST:PORT of one of its nodes", pipeline, others)
	}
	if names := Pipelines(entries); len(names) > 1 {
		return nil, fmt.Errorf("several pipelines run on this machine (%s): name one", strings.Join(names, ", "))
	}
	return entries, nil
}
