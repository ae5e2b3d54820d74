package connectors

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Reach is what a connector's URI makes it touch outside the process,
// declared by the connector (DeclareReach) so a Confinement can check it
// before the connector opens.
type Reach struct {
	// Path: what follows "scheme:" (Target.LocalPath) is a file or a
	// directory (file:, dir:).
	Path bool
	// PathParams are parameters whose value is a file (tls-ca,
	// password-file).
	PathParams []string
	// EnvParams are parameters whose value names an environment variable
	// the connector reads (key-env).
	EnvParams []string
}

// reaches holds the declared Reach of each scheme; mu guards it.
var reaches = map[string]Reach{}

// DeclareReach says what URIs of scheme touch besides their host (every
// URI with a //HOST part is checked against the allowed hosts whatever
// its scheme, unless its Reach has Path).
func DeclareReach(scheme string, r Reach) {
	mu.Lock()
	defer mu.Unlock()
	reaches[scheme] = r
}

// LocalPath is the file or directory a file: or dir: target names: what
// follows the scheme, without its parameters and the "//" of
// "file:///abs".
func (t Target) LocalPath() string {
	_, rest, _ := strings.Cut(t.URI, ":")
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q]
	}
	return strings.TrimPrefix(rest, "//")
}

// Confinement limits what connector URIs may reach, for a deployment
// where the pipeline's author is not trusted with the machine: a nil
// list allows everything of its kind, an empty non-nil one nothing.
type Confinement struct {
	// Dirs are the directories file: and dir: paths, and every parameter
	// naming a file, must lie in (eddy run --allow-path), after symlinks
	// and ".." are resolved.
	Dirs []string
	// Env are the environment variables a URI may name (--allow-env).
	Env []string
	// Hosts are the hosts a URI may name (--allow-host): HOST allows any
	// port, HOST:PORT that port only.
	Hosts []string
}

// confinement is the process's Confinement, checked by every Open and
// Check; nil confines nothing. mu guards it.
var confinement *Confinement

// Confine makes every later OpenSource, OpenSink, OpenLookup and Check
// refuse a URI that reaches outside c. The directories must exist; they
// are resolved here. restore puts back the confinement there was.
func Confine(c Confinement) (restore func(), err error) {
	if c.Dirs != nil {
		dirs := make([]string, 0, len(c.Dirs))
		for _, d := range c.Dirs {
			r, err := filepath.Abs(d)
			if err == nil {
				r, err = filepath.EvalSymlinks(r)
			}
			if err != nil {
				return nil, fmt.Errorf("allowed path %s: %w", d, err)
			}
			if fi, err := os.Stat(r); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("allowed path %s is not a directory", d)
			}
			dirs = append(dirs, r)
		}
		c.Dirs = dirs
	}
	mu.Lock()
	defer mu.Unlock()
	prev := confinement
	confinement = &c
	return func() {
		mu.Lock()
		defer mu.Unlock()
		confinement = prev
	}, nil
}

// ConfinementError is a URI refused by the confinement: What is "path",
// "environment variable" or "host", Name the one refused.
type ConfinementError struct {
	What, Name string
	Allowed    []string
	Flag       string
}

func (e *ConfinementError) Error() string {
	allowed := "none"
	if len(e.Allowed) > 0 {
		allowed = strings.Join(e.Allowed, ", ")
	}
	return fmt.Sprintf("%s %s is not allowed (%s: %s)", e.What, e.Name, e.Flag, allowed)
}

// checkReach refuses t when it reaches outside the process's
// confinement.
func checkReach(t Target) error {
	mu.RLock()
	c, r := confinement, reaches[t.Scheme]
	mu.RUnlock()
	if c == nil {
		return nil
	}
	var paths []string
	if r.Path {
		paths = append(paths, t.LocalPath())
	} else if t.Host != "" {
		if err := c.checkHosts(t.Host); err != nil {
			return err
		}
	}
	for _, p := range r.PathParams {
		if v := t.Params.Get(p); v != "" {
			paths = append(paths, v)
		}
	}
	for _, p := range paths {
		if err := c.checkPath(p); err != nil {
			return err
		}
	}
	for _, p := range r.EnvParams {
		if v := t.Params.Get(p); v != "" && c.Env != nil && !slices.Contains(c.Env, v) {
			return &ConfinementError{What: "environment variable", Name: v, Allowed: c.Env, Flag: "--allow-env"}
		}
	}
	return nil
}

// checkHosts checks each host of a URI's host part: "h1:9092,h2:9092",
// "user@host:3306".
func (c *Confinement) checkHosts(hostPart string) error {
	if c.Hosts == nil {
		return nil
	}
	for _, h := range strings.Split(hostPart, ",") {
		h = strings.TrimSpace(h)
		if i := strings.LastIndexByte(h, '@'); i >= 0 {
			h = h[i+1:]
		}
		if h == "" {
			continue
		}
		name := h
		if host, _, err := net.SplitHostPort(h); err == nil {
			name = host
		}
		ok := slices.ContainsFunc(c.Hosts, func(a string) bool {
			return strings.EqualFold(a, h) || strings.EqualFold(strings.Trim(a, "[]"), name)
		})
		if !ok {
			return &ConfinementError{What: "host", Name: h, Allowed: c.Hosts, Flag: "--allow-host"}
		}
	}
	return nil
}

// checkPath refuses a path outside every allowed directory. It checks the
// path as the system resolves it (a ".." after a symlink leaves the
// symlink's target) and as it reads cleaned (a ".." removes the name
// before it), since connectors open one or the other.
func (c *Confinement) checkPath(p string) error {
	if c.Dirs == nil {
		return nil
	}
	if p == "" {
		return &ConfinementError{What: "path", Name: `""`, Allowed: c.Dirs, Flag: "--allow-path"}
	}
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("path %s: %w", p, err)
		}
		p = wd + string(filepath.Separator) + p
	}
	for _, q := range []string{p, filepath.Clean(p)} {
		r, err := resolve(q)
		if err != nil {
			return fmt.Errorf("path %s: %w", p, err)
		}
		if !slices.ContainsFunc(c.Dirs, func(d string) bool { return within(r, d) }) {
			name := filepath.Clean(p)
			if r != name {
				name += " (" + r + ")"
			}
			return &ConfinementError{What: "path", Name: name, Allowed: c.Dirs, Flag: "--allow-path"}
		}
	}
	return nil
}

// resolve is the absolute path p with every symlink of its longest
// existing prefix followed (a ".." after a symlink leaves the symlink's
// target, as the system reads it), the rest (which does not exist yet: a
// sink's new file) appended cleaned. The prefix is cut at separators, not
// cleaned: cleaning would drop a ".." before the system sees it.
func resolve(p string) (string, error) {
	prefix, rest := p, ""
	for {
		if r, err := filepath.EvalSymlinks(prefix); err == nil {
			return filepath.Join(r, filepath.Clean(rest)), nil
		}
		// Not there (a new file), or not resolvable (below a file, or
		// unreadable, which opening will refuse as well): try the parent.
		i := strings.LastIndexByte(strings.TrimRight(prefix, "/"), '/')
		if i < 0 || prefix == "/" {
			return "", fmt.Errorf("cannot resolve %s", p)
		}
		rest = prefix[i+1:] + "/" + rest
		if prefix = prefix[:i]; prefix == "" {
			prefix = "/"
		}
	}
}

// within says whether path p is dir or below it.
func within(p, dir string) bool {
	if p == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(p, dir)
}
