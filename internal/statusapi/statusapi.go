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
// only.
package statusapi

import (
	"context"
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
	state := func(w http.ResponseWriter, r *http.Request, key string) {
		var (
			rows []connectors.Row
			err  error
		)
		if node != nil && !isLocal(r) {
			rows, err = node.State(r.Context(), key)
		} else {
			rows, err = local.State(r.Context(), key)
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
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) { state(w, r, "") })
	mux.HandleFunc("GET /state/{key...}", func(w http.ResponseWriter, r *http.Request) { state(w, r, r.PathValue("key")) })
	addPage(mux, local)
	return mux
}

func isLocal(r *http.Request) bool {
	v := r.URL.Query().Get("local")
	return v != "" && v != "0" && v != "false"
}

// ErrUnreachable is returned by Fetch when nothing answers at the address.
var ErrUnreachable = errors.New("no eddy node answers")

// Fetch returns the body of path at a node's --http address.
func Fetch(ctx context.Context, addr, path string) ([]byte, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(addr, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w at %s (is it running with --http %s?): %w", ErrUnreachable, addr, strings.TrimPrefix(addr, "http://"), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &StatusError{Code: resp.StatusCode, Msg: fmt.Sprintf("%s%s: %s", addr, path, strings.TrimSpace(string(msg)))}
	}
	return io.ReadAll(resp.Body)
}

// StatusError is a node's answer other than 200 OK.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

// Get fetches path from a node's --http address and copies the body to w.
func Get(ctx context.Context, addr, path string, w io.Writer) error {
	b, err := Fetch(ctx, addr, path)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// KeyPath is the path of one key's state.
func KeyPath(key string) string { return "/state/" + url.PathEscape(key) }
