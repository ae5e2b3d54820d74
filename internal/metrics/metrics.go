// Package metrics serves a running pipeline's Prometheus metrics
// (GET /metrics on eddy run --http): the Go and process collectors and
// eddy's own series, all named eddy_*, labelled by pipeline and node, and
// by partition, sink or hook where they apply. The series are read at
// scrape time from the engine's counters (actors.Stats), its status
// (actors.Handle.Status) and the script's Lua time, so the hot path pays
// nothing for them. docs/observability.md lists every series.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/scripting"
)

// Run is the running pipeline the metrics describe.
type Run struct {
	Pipeline *scripting.Pipeline
	// Node names this process (actors.Config.Node).
	Node  string
	Stats *actors.Stats
	// Status answers the node's own status; until it does (the run is
	// starting) eddy_status_up is 0 and the per-partition series are
	// absent.
	Status func(ctx context.Context) (actors.Status, error)
	// Logger receives the errors of a scrape (nil: none).
	Logger *slog.Logger
}

// statusTimeout bounds the status question of one scrape.
const statusTimeout = 5 * time.Second

// Registry returns a registry of its own (never the global default, which
// libraries may fill) with the Go and process collectors and run's series.
func Registry(run Run) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(run),
	)
	return reg
}

// Handler serves run's metrics in the Prometheus exposition format.
func Handler(run Run) http.Handler {
	opts := promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}
	if run.Logger != nil {
		opts.ErrorLog = slog.NewLogLogger(run.Logger.Handler(), slog.LevelWarn)
	}
	return promhttp.HandlerFor(Registry(run), opts)
}
