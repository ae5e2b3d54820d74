package connectors

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Params are a connector's settings: the URI's query parameters, overlaid
// with what the command line sets (for example max-files-per-trigger).
type Params = url.Values

// Target is a parsed connector URI. "dir:data/flows" has Scheme "dir" and
// Path "data/flows"; "kafka://h:9092/t?group=g" has Host "h:9092" and Path
// "t"; a bare word such as "stdout" is a Scheme alone.
type Target struct {
	URI    string
	Scheme string
	Host   string
	Path   string
	Params Params
}

// SourceFactory opens a source for a target.
type SourceFactory func(t Target) (Source, error)

// SinkFactory opens a sink for a target.
type SinkFactory func(t Target) (Sink, error)

// AnyParam, among the parameters a connector declares, lets it take
// parameters it does not know: the http source passes them on to the API.
const AnyParam = "*"

var (
	mu      sync.RWMutex
	sources = map[string]SourceFactory{}
	sinks   = map[string]SinkFactory{}
	// declared holds the parameters each registered connector reads, by
	// kind ("source", "sink", "lookup") and scheme.
	declared = map[string]map[string][]string{"source": {}, "sink": {}, "lookup": {}}
)

// RegisterSource makes scheme open sources with f, which reads the URI
// parameters named by params; a URI with any other parameter is refused
// before f is called. It panics on a duplicate scheme: that is a
// programming error, found at init.
func RegisterSource(scheme string, f SourceFactory, params ...string) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := sources[scheme]; dup {
		panic("connectors: source scheme registered twice: " + scheme)
	}
	sources[scheme] = f
	declare("source", scheme, params)
}

// RegisterSink makes scheme open sinks with f, which reads the URI
// parameters named by params.
func RegisterSink(scheme string, f SinkFactory, params ...string) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := sinks[scheme]; dup {
		panic("connectors: sink scheme registered twice: " + scheme)
	}
	sinks[scheme] = f
	declare("sink", scheme, params)
}

// declare records the parameters of a connector; mu is held.
func declare(kind, scheme string, names []string) {
	names = slices.Clone(names)
	slices.Sort(names)
	declared[kind][scheme] = names
}

// Accepts says whether the kind ("source", "sink" or "lookup") of
// connector registered for scheme reads the URI parameter name, so a
// caller overlays a setting (the CLI's --max-record-size) only where it
// means something.
func Accepts(kind, scheme, name string) bool {
	mu.RLock()
	defer mu.RUnlock()
	known := declared[kind][scheme]
	return slices.Contains(known, name) || slices.Contains(known, AnyParam)
}

// checkParams refuses a parameter the connector for t does not declare,
// listing the ones it does: a misspelt option would otherwise be ignored.
func checkParams(kind string, t Target) error {
	mu.RLock()
	known := declared[kind][t.Scheme]
	mu.RUnlock()
	if slices.Contains(known, AnyParam) {
		return nil
	}
	var unknown []string
	for name := range t.Params {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	takes := "takes no parameters"
	if len(known) > 0 {
		takes = "knows " + strings.Join(known, ", ")
	}
	return fmt.Errorf("unknown parameter %s (%s: %s)", strings.Join(unknown, ", "), t.Scheme, takes)
}

// checkURI is what every URI passes before its connector opens: the
// parameters it sets are ones the connector reads, and what it reaches
// lies inside the process's Confinement.
func checkURI(kind string, t Target) error {
	if err := checkParams(kind, t); err != nil {
		return err
	}
	return checkReach(t)
}

// Parse splits a connector URI into a Target.
func Parse(uri string) (Target, error) {
	uri = strings.TrimSpace(uri)
	if uri == "" {
		return Target{}, fmt.Errorf("empty connector URI")
	}
	t := Target{URI: uri, Params: Params{}}
	scheme, rest, found := strings.Cut(uri, ":")
	if !found {
		rest = ""
	}
	if !found || strings.ContainsAny(scheme, "/.?") {
		// A bare word, perhaps with parameters: "stdin?max-record-size=1MiB".
		bare, query, hasQuery := strings.Cut(uri, "?")
		if strings.ContainsAny(bare, "/.") {
			return Target{}, fmt.Errorf("connector URI %q has no scheme: write dir:PATH for a directory or file:PATH for a file", uri)
		}
		scheme, rest = bare, ""
		if hasQuery {
			rest = "?" + query
		}
	}
	t.Scheme = strings.ToLower(scheme)
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		p, err := url.ParseQuery(rest[q+1:])
		if err != nil {
			return Target{}, fmt.Errorf("connector URI %q: bad parameters: %w", uri, err)
		}
		t.Params, rest = p, rest[:q]
	}
	if strings.HasPrefix(rest, "//") {
		rest = rest[2:]
		host, path, _ := strings.Cut(rest, "/")
		t.Host, t.Path = host, path
	} else {
		t.Path = rest
	}
	return t, nil
}

// OpenSource opens the source a URI names, with extra parameters overlaid.
func OpenSource(uri string, extra Params) (Source, error) {
	t, err := Parse(uri)
	if err != nil {
		return nil, err
	}
	for k, v := range extra {
		t.Params[k] = v
	}
	mu.RLock()
	f, ok := sources[t.Scheme]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("source %q: unknown scheme %q (known: %s)", uri, t.Scheme, known(sources))
	}
	if err := checkURI("source", t); err != nil {
		return nil, fmt.Errorf("source %q: %w", uri, err)
	}
	s, err := f(t)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", uri, err)
	}
	return s, nil
}

// OpenSink opens the sink a URI names.
func OpenSink(uri string) (Sink, error) {
	t, err := Parse(uri)
	if err != nil {
		return nil, err
	}
	mu.RLock()
	f, ok := sinks[t.Scheme]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("sink %q: unknown scheme %q (known: %s)", uri, t.Scheme, known(sinks))
	}
	if err := checkURI("sink", t); err != nil {
		return nil, fmt.Errorf("sink %q: %w", uri, err)
	}
	s, err := f(t)
	if err != nil {
		return nil, fmt.Errorf("sink %q: %w", uri, err)
	}
	return s, nil
}

func known[F any](m map[string]F) string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// IntParam reads an integer parameter, def when absent, with an error that
// names the parameter when it is not a whole number or is below min.
func (t Target) IntParam(name string, def, min int64) (int64, error) {
	s := t.Params.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%q is not a whole number", name, s)
	}
	if n < min {
		return 0, fmt.Errorf("parameter %s=%d is below %d", name, n, min)
	}
	return n, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// FloatParam reads a number parameter, def when absent, with an error that
// names the parameter when it is not a number or lies outside [min, max].
func (t Target) FloatParam(name string, def, min, max float64) (float64, error) {
	s := t.Params.Get(name)
	if s == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f {
		return 0, fmt.Errorf("parameter %s=%q is not a number", name, s)
	}
	if f < min || f > max {
		return 0, fmt.Errorf("parameter %s=%s is outside [%g, %g]", name, s, min, max)
	}
	return f, nil
}

// DurationParam reads a duration parameter such as "200ms" or "2s", def when
// absent, with an error that names the parameter when it does not parse or
// is not positive.
func (t Target) DurationParam(name string, def time.Duration) (time.Duration, error) {
	s := t.Params.Get(name)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%q is not a duration such as 200ms or 2s", name, s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("parameter %s=%s must be positive", name, s)
	}
	return d, nil
}

// Choice reads a parameter that must be one of allowed, def when absent.
func (t Target) Choice(name, def string, allowed ...string) (string, error) {
	s := t.Params.Get(name)
	if s == "" {
		return def, nil
	}
	for _, a := range allowed {
		if s == a {
			return s, nil
		}
	}
	return "", fmt.Errorf("parameter %s=%q is not one of %s", name, s, strings.Join(allowed, ", "))
}

// SplitList splits a comma-separated parameter value (a=b,c), dropping
// blanks and spaces around the items.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// MapParam reads a parameter of field:column pairs (?map=ts:time,dev:device).
func (t Target) MapParam(name string) (map[string]string, error) {
	m := map[string]string{}
	for _, pair := range SplitList(t.Params.Get(name)) {
		f, c, ok := strings.Cut(pair, ":")
		if !ok || f == "" || c == "" {
			return nil, fmt.Errorf("parameter %s: %q is not field:column", name, pair)
		}
		m[f] = c
	}
	return m, nil
}

// Check says whether uri names a registered connector of kind ("source",
// "sink" or "lookup") and sets only parameters that connector reads, with
// the same messages OpenSource, OpenSink and OpenLookup give, and reaches
// only what the process's Confinement allows. It opens
// nothing and connects to nothing, so parameter values (a broker's
// address, a file's existence) are checked only when the connector opens.
func Check(kind, uri string) error {
	t, err := Parse(uri)
	if err != nil {
		return err
	}
	mu.RLock()
	_, ok := declared[kind][t.Scheme]
	schemes := make([]string, 0, len(declared[kind]))
	for s := range declared[kind] {
		schemes = append(schemes, s)
	}
	mu.RUnlock()
	if !ok {
		sort.Strings(schemes)
		return fmt.Errorf("%s %q: unknown scheme %q (known: %s)", kind, uri, t.Scheme, strings.Join(schemes, ", "))
	}
	if err := checkURI(kind, t); err != nil {
		return fmt.Errorf("%s %q: %w", kind, uri, err)
	}
	return nil
}
