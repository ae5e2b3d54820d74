package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

func init() {
	for _, scheme := range []string{"http", "https"} {
		// Parameters besides its options go to the API.
		connectors.RegisterSource(scheme, func(t connectors.Target) (connectors.Source, error) { return Open(t) }, connectors.AnyParam)
		connectors.DeclareReach(scheme, connectors.Reach{EnvParams: []string{"key-env"}})
	}
}

// options are the URI parameters the source reads itself; every other
// parameter is sent to the API.
var options = []string{"interval", "each", "key-env", "key-param", "split", "timeout", "retry-for", "max-body"}

// Defaults of the source's options.
const (
	DefaultInterval = time.Minute
	DefaultTimeout  = 10 * time.Second
	DefaultMaxBody  = 16 << 20
)

// Config is what an http(s):// source was opened with.
type Config struct {
	// URLs are the URLs to poll, one partition each, without the key.
	URLs []*url.URL
	// Interval is the time between polls of one URL.
	Interval time.Duration
	// KeyParam and Key: the API key's parameter and value ("" for none).
	KeyParam, Key string
	// SplitArray makes each element of a JSON array response a record.
	SplitArray bool
	// Timeout bounds one request; RetryFor bounds the retries of one poll
	// (0: retry until the run stops).
	Timeout, RetryFor time.Duration
	// MaxBody caps a response body.
	MaxBody int64
	// Client is the HTTP client; nil for one with Timeout.
	Client *nethttp.Client
}

// Open reads t's options and expands its URL into partitions.
func Open(t connectors.Target) (*Source, error) {
	c := Config{}
	var err error
	if c.Interval, err = t.DurationParam("interval", DefaultInterval); err != nil {
		return nil, err
	}
	if c.Timeout, err = t.DurationParam("timeout", DefaultTimeout); err != nil {
		return nil, err
	}
	if t.Params.Get("retry-for") != "" {
		if c.RetryFor, err = t.DurationParam("retry-for", 0); err != nil {
			return nil, err
		}
	}
	if c.MaxBody, err = t.IntParam("max-body", DefaultMaxBody, 1); err != nil {
		return nil, err
	}
	split, err := t.Choice("split", "none", "none", "array")
	if err != nil {
		return nil, err
	}
	c.SplitArray = split == "array"
	if env := t.Params.Get("key-env"); env != "" {
		c.Key = os.Getenv(env)
		if c.Key == "" {
			return nil, fmt.Errorf("key-env=%s: the environment variable %s is empty or unset", env, env)
		}
		c.KeyParam = t.Params.Get("key-param")
		if c.KeyParam == "" {
			return nil, fmt.Errorf("key-env=%s needs key-param=NAME, the API's parameter for the key (appid for OpenWeatherMap)", env)
		}
	}
	if t.Host == "" {
		return nil, fmt.Errorf("http source: the URI %q names no host", t.URI)
	}
	base := url.URL{Scheme: t.Scheme, Host: t.Host, Path: "/" + t.Path}
	q := url.Values{}
	for k, v := range t.Params {
		if !slices.Contains(options, k) {
			q[k] = v
		}
	}
	if c.KeyParam != "" && q.Has(c.KeyParam) {
		return nil, fmt.Errorf("parameter %s: put the key in the environment variable key-env names, not in the URI", c.KeyParam)
	}
	each := t.Params.Get("each")
	var values []string
	if each != "" {
		for _, v := range q[each] {
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					values = append(values, s)
				}
			}
		}
		if len(values) == 0 {
			return nil, fmt.Errorf("each=%s: the URI has no %s=V1,V2,… to poll one by one", each, each)
		}
	}
	if values == nil {
		u := base
		u.RawQuery = q.Encode()
		c.URLs = append(c.URLs, &u)
	}
	for _, v := range values {
		u := base
		qv := url.Values{}
		for k, vs := range q {
			qv[k] = vs
		}
		qv.Set(each, v)
		u.RawQuery = qv.Encode()
		c.URLs = append(c.URLs, &u)
	}
	return New(c)
}

// New makes a source from c.
func New(c Config) (*Source, error) {
	if len(c.URLs) == 0 {
		return nil, fmt.Errorf("http source: no URL")
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.Client == nil {
		c.Client = &nethttp.Client{Timeout: c.Timeout}
	}
	s := &Source{}
	for _, u := range c.URLs {
		s.parts = append(s.parts, &partition{cfg: c, url: u, id: u.String(), log: slog.Default().With("source", u.String())})
	}
	return s, nil
}

// Source is an http(s):// source: one partition per URL.
type Source struct {
	parts []*partition
}

var _ connectors.Source = (*Source)(nil)

// Start assigns every partition.
func (s *Source) Start(ctx context.Context, l connectors.Listener) error {
	for _, p := range s.parts {
		l.Assign(p)
	}
	return nil
}

// Close closes the partitions.
func (s *Source) Close() error { return nil }

type partition struct {
	cfg Config
	url *url.URL
	id  string
	log *slog.Logger
	pos position
}

var _ connectors.Partition = (*partition)(nil)

// position is a partition's checkpointed state. It never holds the key.
type position struct {
	// Polls counts the polls that yielded records; Seq of the next record.
	Polls int64 `json:"polls"`
	// Last is when the last poll was answered, Unix nanoseconds.
	Last         int64  `json:"last,omitempty"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

func (p *partition) ID() string { return p.id }

func (p *partition) encode() connectors.Position {
	b, _ := json.Marshal(p.pos)
	return b
}

func (p *partition) Seek(pos connectors.Position) error {
	if len(pos) == 0 {
		p.pos = position{}
		return nil
	}
	var q position
	if err := json.Unmarshal(pos, &q); err != nil {
		return fmt.Errorf("%s: bad position %q: %w", p.id, pos, err)
	}
	p.pos = q
	return nil
}

func (p *partition) Describe(pos connectors.Position) string {
	if len(pos) == 0 {
		return p.id + " before the first poll"
	}
	var q position
	if err := json.Unmarshal(pos, &q); err != nil {
		return fmt.Sprintf("%s bad position %q", p.id, pos)
	}
	s := fmt.Sprintf("%s after %d polls with records", p.id, q.Polls)
	if q.Last > 0 {
		s += ", last answered " + time.Unix(0, q.Last).UTC().Format(time.RFC3339)
	}
	if q.ETag != "" {
		s += ", etag " + q.ETag
	}
	return s
}

func (p *partition) Close() error { return nil }

// Read waits for the next poll, makes it, and returns its records: none
// when the API answers 304 Not Modified. Every batch is CaughtUp: nothing
// more comes until the next interval.
func (p *partition) Read(ctx context.Context) (connectors.Batch, error) {
	if p.pos.Last > 0 {
		due := time.Unix(0, p.pos.Last).Add(p.cfg.Interval)
		if err := sleep(ctx, time.Until(due)); err != nil {
			return connectors.Batch{}, err
		}
	}
	body, hdr, err := p.poll(ctx)
	if err != nil {
		return connectors.Batch{}, err
	}
	p.pos.Last = time.Now().UnixNano()
	b := connectors.Batch{Where: p.id, Unit: "poll", CaughtUp: true}
	if body == nil {
		b.End = p.encode()
		return b, nil
	}
	recs, err := p.records(body)
	if err != nil {
		return connectors.Batch{}, err
	}
	p.pos.Polls++
	p.pos.ETag, p.pos.LastModified = hdr.Get("ETag"), hdr.Get("Last-Modified")
	for _, r := range recs {
		b.Records = append(b.Records, connectors.Record{Value: r, Seq: p.pos.Polls, Time: time.Unix(0, p.pos.Last)})
	}
	b.End = p.encode()
	return b, nil
}

// records splits a body into records, each compacted to one line.
func (p *partition) records(body []byte) ([][]byte, error) {
	body = bytes.TrimSpace(body)
	if !p.cfg.SplitArray {
		var buf bytes.Buffer
		if json.Valid(body) && json.Compact(&buf, body) == nil {
			return [][]byte{buf.Bytes()}, nil
		}
		// Not JSON: the record is the body as it came, for parse to judge.
		return [][]byte{body}, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		return nil, fmt.Errorf("%s: split=array: the response is not a JSON array: %v", p.id, err)
	}
	out := make([][]byte, 0, len(elems))
	for _, e := range elems {
		var buf bytes.Buffer
		if err := json.Compact(&buf, e); err != nil {
			return nil, fmt.Errorf("%s: %w", p.id, err)
		}
		out = append(out, buf.Bytes())
	}
	return out, nil
}

// StatusError is a response the source does not retry: a 4xx other than
// 408 and 429, which a retry would only repeat (a bad key, an unknown
// city).
type StatusError struct {
	URL    string // without the key
	Status int
	Body   string // the start of the body, with the key redacted
}

func (e *StatusError) Error() string {
	hint := ""
	switch e.Status {
	case 401, 403:
		hint = " (is the API key right?)"
	case 404:
		hint = " (does what the URL names exist?)"
	}
	return fmt.Sprintf("GET %s: %d %s%s: %s", e.URL, e.Status, nethttp.StatusText(e.Status), hint, e.Body)
}

// poll GETs the URL, retrying 5xx, 408, 429, timeouts and network errors
// with backoff. A nil body means 304 Not Modified.
func (p *partition) poll(ctx context.Context) ([]byte, nethttp.Header, error) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		body, hdr, retryAfter, err := p.get(ctx)
		if err == nil {
			if attempt > 1 {
				p.log.Info("http source: poll succeeded after retries", "attempts", attempt, "outage", time.Since(start).Round(time.Millisecond))
			}
			return body, hdr, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		var se *StatusError
		if errors.As(err, &se) {
			return nil, nil, fmt.Errorf("http source: %w", err)
		}
		if p.cfg.RetryFor > 0 && time.Since(start) > p.cfg.RetryFor {
			return nil, nil, fmt.Errorf("http source: GET %s: gave up after %v of retries (retry-for=%v): %w", p.id, time.Since(start).Round(time.Second), p.cfg.RetryFor, err)
		}
		wait := max(backoff(attempt), retryAfter)
		p.log.Warn("http source: poll failed, retrying", "attempt", attempt, "retry_in", wait, "error", err)
		if err := sleep(ctx, wait); err != nil {
			return nil, nil, err
		}
	}
}

// get makes one request. Its errors never hold the key.
func (p *partition) get(ctx context.Context) (body []byte, hdr nethttp.Header, retryAfter time.Duration, err error) {
	u := *p.url
	if p.cfg.Key != "" {
		q := u.Query()
		q.Set(p.cfg.KeyParam, p.cfg.Key)
		u.RawQuery = q.Encode()
	}
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, 0, p.redact(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "eddy")
	if p.pos.ETag != "" {
		req.Header.Set("If-None-Match", p.pos.ETag)
	}
	if p.pos.LastModified != "" {
		req.Header.Set("If-Modified-Since", p.pos.LastModified)
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return nil, nil, 0, p.redact(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxBody+1))
	if err != nil {
		return nil, nil, 0, p.redact(err)
	}
	switch {
	case resp.StatusCode == nethttp.StatusNotModified:
		return nil, resp.Header, 0, nil
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if int64(len(data)) > p.cfg.MaxBody {
			return nil, nil, 0, &StatusError{URL: p.id, Status: resp.StatusCode, Body: fmt.Sprintf("the body is over max-body=%d bytes", p.cfg.MaxBody)}
		}
		return data, resp.Header, 0, nil
	case resp.StatusCode == nethttp.StatusTooManyRequests || resp.StatusCode == nethttp.StatusRequestTimeout || resp.StatusCode >= 500:
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return nil, nil, min(time.Duration(ra)*time.Second, 5*time.Minute), fmt.Errorf("GET %s: %d %s: %s", p.id, resp.StatusCode, nethttp.StatusText(resp.StatusCode), p.snippet(data))
	default:
		return nil, nil, 0, &StatusError{URL: p.id, Status: resp.StatusCode, Body: p.snippet(data)}
	}
}

// snippet is the start of a body for an error message, key redacted.
func (p *partition) snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return p.redactString(s)
}

// redact rewrites an error so that the key, plain or URL-encoded, does not
// appear in it. The result does not wrap err, whose text holds the key.
func (p *partition) redact(err error) error {
	msg := p.redactString(err.Error())
	var ne net.Error
	if errors.As(err, &ne) {
		return redacted{msg: msg, timeout: ne.Timeout()}
	}
	return redacted{msg: msg}
}

func (p *partition) redactString(s string) string {
	if p.cfg.Key == "" {
		return s
	}
	s = strings.ReplaceAll(s, p.cfg.Key, "REDACTED")
	return strings.ReplaceAll(s, url.QueryEscape(p.cfg.Key), "REDACTED")
}

type redacted struct {
	msg     string
	timeout bool
}

func (r redacted) Error() string { return r.msg }

// Timeout says whether the request timed out.
func (r redacted) Timeout() bool { return r.timeout }

func backoff(n int) time.Duration {
	d := 200 * time.Millisecond
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
