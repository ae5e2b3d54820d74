// Package statusapi serves a running pipeline's status and live result
// table over HTTP (eddy run --http), and is the client eddy status and
// eddy query use.
//
//	GET /status          the node's status (actors.Status) as JSON; on a
//	                     clustered node the cluster's (cluster.Status):
//	                     every node, its partitions, their lag
//	GET /status?local=1  the node's own status, clustered or not
//	GET /state           the whole result table, as a complete emit shapes
//	                     it; on a clustered node every node's share, merged
//	GET /state/KEY       the current rows of one key (each of its windows)
//	GET /                the web page, and the JSON it reads (page.go)
//
// /state?local=1 and /state/KEY?local=1 answer from this node's partitions
// only. A /state answer is whole or says it isn't: while a partition
// restores from its changelog, or has no owner (a rebalance), it is 503
// naming the partitions, unless asked with partial=1: then 200 with the
// partial rows and Eddy-Partial: true, Eddy-Partial-Reason saying why.
//
// Protect (auth.go, eddy run --http-token-file) puts all of it behind a
// bearer token, with GET and POST /login and POST /logout for the web
// page; Client is the client that sends the token and speaks TLS.
package statusapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/actors/cluster"
	"github.com/eddy-stream/eddy/connectors"
)

// Local is a running engine (*actors.Handle): its own status and state,
// and its shares for a cluster.
type Local interface {
	cluster.Local
	State(ctx context.Context, key string) ([]connectors.Row, error)
}

// Handler serves h, not clustered.
func Handler(h *actors.Handle) http.Handler { return New(h, nil) }

// New serves local; with node set (the run is clustered), /status is the
// cluster's view and /state merges the shares of every node.
func New(local Local, node *cluster.Node) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		var (
			v   any
			err error
		)
		if node != nil && !isLocal(r) {
			v, err = node.Status(r.Context())
		} else {
			v, err = local.Status(r.Context())
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	})
	state := func(w http.ResponseWriter, r *http.Request, key string) { serveState(w, r, local, node, key) }
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) { state(w, r, "") })
	mux.HandleFunc("GET /state/{key...}", func(w http.ResponseWriter, r *http.Request) { state(w, r, r.PathValue("key")) })
	addPage(mux, local)
	return mux
}

// PartialHeader is set to "true" on a /state answer that misses part of
// the result table, given because the request asked for one (?partial=1);
// PartialReasonHeader says what it misses, on that answer and on the 503
// refusing an incomplete one.
const (
	PartialHeader       = "Eddy-Partial"
	PartialReasonHeader = "Eddy-Partial-Reason"
)

// serveState answers GET /state and /state/KEY: the whole answer, or 503
// naming what it misses (a partition restoring, or without an owner in a
// rebalance), or with ?partial=1 the partial rows marked by PartialHeader.
func serveState(w http.ResponseWriter, r *http.Request, local Local, node *cluster.Node, key string) {
	var (
		rows []connectors.Row
		err  error
	)
	switch {
	case node != nil && isLocal(r):
		rows, err = node.LocalState(r.Context(), key)
	case node != nil:
		rows, err = node.State(r.Context(), key)
	default:
		rows, err = local.State(r.Context(), key)
	}
	var incomplete *actors.IncompleteError
	if errors.As(err, &incomplete) {
		if !flag(r, "partial") {
			w.Header().Set("Retry-After", "1")
			w.Header().Set(PartialReasonHeader, incomplete.Error())
			http.Error(w, err.Error()+" (ask with partial=1 for the partial answer)", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set(PartialHeader, "true")
		w.Header().Set(PartialReasonHeader, incomplete.Error())
		err = nil
	}
	switch {
	case errors.Is(err, actors.ErrNoResultTable):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	case key != "" && len(rows) == 0:
		http.Error(w, fmt.Sprintf("no state for key %q", key), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	var buf []byte
	for _, row := range rows {
		buf = append(connectors.AppendJSON(buf[:0], row), '\n')
		w.Write(buf)
	}
}

func isLocal(r *http.Request) bool { return flag(r, "local") }

// flag reads a boolean query parameter: set unless empty, 0 or false.
func flag(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	return v != "" && v != "0" && v != "false"
}

// ErrUnreachable is returned by Fetch when nothing answers at the address.
var ErrUnreachable = errors.New("no eddy node answers")

// Client asks nodes for their status and state: with Token, as a node
// run with --http-token-file wants; with TLS, over HTTPS (an address
// without a scheme is then https://).
type Client struct {
	Token string
	TLS   *tls.Config
}

// Fetch returns the body of path at a node's --http address.
func Fetch(ctx context.Context, addr, path string) ([]byte, error) {
	return Client{}.Fetch(ctx, addr, path)
}

// FetchState is Client.FetchState without a token or TLS.
func FetchState(ctx context.Context, addr, path string) (body []byte, partial string, err error) {
	return Client{}.FetchState(ctx, addr, path)
}

// Fetch returns the body of path at a node's --http address.
func (c Client) Fetch(ctx context.Context, addr, path string) ([]byte, error) {
	body, _, err := c.fetch(ctx, addr, path)
	return body, err
}

// FetchState is Fetch for a /state path asked with partial=1: partial is
// the reason the answer is partial (PartialReasonHeader), "" when it is
// whole.
func (c Client) FetchState(ctx context.Context, addr, path string) (body []byte, partial string, err error) {
	body, h, err := c.fetch(ctx, addr, path)
	if err != nil {
		return nil, "", err
	}
	if h.Get(PartialHeader) == "true" {
		partial = h.Get(PartialReasonHeader)
		if partial == "" {
			partial = "the answer is incomplete"
		}
	}
	return body, partial, nil
}

func (c Client) fetch(ctx context.Context, addr, path string) ([]byte, http.Header, error) {
	if !strings.Contains(addr, "://") {
		scheme := "http://"
		if c.TLS != nil {
			scheme = "https://"
		}
		addr = scheme + addr
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(addr, "/")+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	var unverified *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unverified):
		return nil, nil, fmt.Errorf("%s: %w: give --http-tls-ca FILE, the CA certificate (or the certificate itself) the node's --http-tls-cert verifies against", addr, err)
	case err != nil:
		_, hostPort, _ := strings.Cut(addr, "://")
		return nil, nil, fmt.Errorf("%w at %s (is it running with --http %s?): %w", ErrUnreachable, addr, hostPort, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode == http.StatusBadRequest && bytes.Contains(msg, []byte("HTTPS server")) {
			msg = append(bytes.TrimSpace(msg), " (the node serves HTTPS: give --http https://HOST:PORT, or --http-tls-ca FILE)"...)
		}
		return nil, nil, &StatusError{Code: resp.StatusCode, Msg: fmt.Sprintf("%s%s: %s", addr, path, strings.TrimSpace(string(msg))),
			Incomplete: resp.Header.Get(PartialReasonHeader)}
	}
	body, err := io.ReadAll(resp.Body)
	return body, resp.Header, err
}

func (c Client) httpClient() *http.Client {
	if c.TLS == nil {
		return http.DefaultClient
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = c.TLS
	return &http.Client{Transport: t}
}

// StatusError is a node's answer other than 200 OK.
type StatusError struct {
	Code int
	Msg  string
	// Incomplete says what part of the result table the answer would
	// miss, when that is why the node refused it (asking with partial=1
	// gets it).
	Incomplete string
}

func (e *StatusError) Error() string { return e.Msg }

// Get fetches path from a node's --http address and copies the body to w.
func Get(ctx context.Context, addr, path string, w io.Writer) error {
	return Client{}.Get(ctx, addr, path, w)
}

// Get fetches path from a node's --http address and copies the body to w.
func (c Client) Get(ctx context.Context, addr, path string, w io.Writer) error {
	b, err := c.Fetch(ctx, addr, path)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// KeyPath is the path of one key's state.
func KeyPath(key string) string { return "/state/" + url.PathEscape(key) }
