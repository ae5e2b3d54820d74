// Package statusapi serves a running pipeline's status and live result
// table over HTTP (eddy run --http), and is the client eddy status and
// eddy query use.
//
//	GET /status       the node's status (actors.Status) as JSON
//	GET /state        the whole result table, as a complete emit shapes it
//	GET /state/KEY    the current rows of one key (each of its windows)
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
	"github.com/eddy-stream/eddy/connectors"
)

// Handler serves h.
func Handler(h *actors.Handle) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := h.Status(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	})
	state := func(w http.ResponseWriter, r *http.Request, key string) {
		rows, err := h.State(r.Context(), key)
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
	return mux
}

// Get fetches path from a node's --http address and copies the body to w.
func Get(ctx context.Context, addr, path string, w io.Writer) error {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(addr, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no eddy node answers at %s (is it running with --http %s?): %w", addr, strings.TrimPrefix(addr, "http://"), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s%s: %s", addr, path, strings.TrimSpace(string(msg)))
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// KeyPath is the path of one key's state.
func KeyPath(key string) string { return "/state/" + url.PathEscape(key) }
