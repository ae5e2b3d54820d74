package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/scripting"
)

// kind is a series' Prometheus type.
type kind int

const (
	counter kind = iota
	gauge
	histogram
)

// series is one of eddy's series: its name, type, labels beyond pipeline
// and node, and meaning. docs/observability.md lists the same.
type series struct {
	name   string
	kind   kind
	labels []string
	help   string
}

// The series, in the order of the docs.
var (
	recordsRead   = series{"eddy_records_read_total", counter, nil, "Records read from the source."}
	recordsKept   = series{"eddy_records_kept_total", counter, nil, "Records that passed parse and filter."}
	recordsFailed = series{"eddy_records_failed_total", counter, nil, "Records that failed (sent to the dead letters)."}
	recordsLate   = series{"eddy_records_late_total", counter, nil, "Records that came after their window closed."}
	sinkRows      = series{"eddy_sink_rows_total", counter, []string{"sink"}, "Rows written to a sink (emitted)."}
	sinkErrors    = series{"eddy_sink_errors_total", counter, []string{"sink"}, "Failed writes, flushes and commits of a sink."}
	sinkRetries   = series{"eddy_sink_retries_total", counter, []string{"sink"}, "Writes a sink tried again after a transient failure (sinks that retry: MySQL, Cassandra)."}
	sinkFlush     = series{"eddy_sink_flush_duration_seconds", histogram, []string{"sink"}, "Time a sink's flush (or transactional commit) at a trigger takes."}
	endToEnd      = series{"eddy_end_to_end_latency_seconds", histogram, []string{"sink"}, "Time from records leaving their source to a sink's write of what they produced returning (record sinks: each write; results: each trigger, from the oldest batch in it)."}
	batchLatency  = series{"eddy_batch_latency_seconds", histogram, nil, "Time from a batch leaving its source to its records being folded into state (or handed to the records sink)."}
	fireLatency   = series{"eddy_window_fire_latency_seconds", histogram, nil, "Time from reading the record that closed a window to the window's row leaving for the sink (final emit)."}
	partitions    = series{"eddy_partitions", gauge, nil, "Partitions this node reads."}
	partLag       = series{"eddy_partition_lag_records", gauge, []string{"partition"}, "Records between a partition's position and its end, when the source knows the end (Kafka)."}
	partOffset    = series{"eddy_partition_offset", gauge, []string{"partition"}, "A partition's position as a number, when the source numbers positions (Kafka offset, generator record)."}
	partCaughtUp  = series{"eddy_partition_caught_up", gauge, []string{"partition"}, "1 when a partition has read all there is for now."}
	partRestoring = series{"eddy_partition_restoring", gauge, []string{"partition"}, "1 while a partition restores its state from the changelog."}
	partRestored  = series{"eddy_partition_restore_done_changes", gauge, []string{"partition"}, "Changelog changes a restoring partition has read."}
	partToRestore = series{"eddy_partition_restore_total_changes", gauge, []string{"partition"}, "Changelog changes a restoring partition has to read."}
	restored      = series{"eddy_restored_changes_total", counter, nil, "Changelog changes of finished restores."}
	standbys      = series{"eddy_standby_partitions", gauge, nil, "Partitions of other nodes this node keeps warm copies of."}
	standbyOffset = series{"eddy_standby_offset", gauge, []string{"partition"}, "The changelog offset a standby copy has read to."}
	standbyRead   = series{"eddy_standby_changes_total", counter, nil, "Changelog changes read into standby copies."}
	checkpoints   = series{"eddy_checkpoints_total", counter, nil, "Complete checkpoints."}
	cpFailed      = series{"eddy_checkpoints_failed_total", counter, nil, "Checkpoints aborted or not completed."}
	cpDuration    = series{"eddy_checkpoint_duration_seconds", histogram, nil, "Time from a checkpoint's barrier to the checkpoint being complete."}
	cpLast        = series{"eddy_last_checkpoint_id", gauge, nil, "The number of the last complete checkpoint."}
	cpLastTime    = series{"eddy_last_checkpoint_timestamp_seconds", gauge, nil, "When the last complete checkpoint was taken, Unix seconds."}
	stateKeys     = series{"eddy_state_keys", gauge, nil, "Keys in the state as of the last complete checkpoint."}
	stateBytes    = series{"eddy_state_bytes", gauge, nil, "Size of the state directory on disk."}
	watermark     = series{"eddy_watermark_timestamp_seconds", gauge, nil, "The event-time watermark, Unix seconds (event-time pipelines)."}
	watermarkLag  = series{"eddy_watermark_lag_seconds", gauge, nil, "Wall-clock time minus the watermark (event-time pipelines)."}
	reloads       = series{"eddy_script_reloads_total", counter, nil, "Versions of the script that took over the run (eddy run --watch or SIGHUP)."}
	reloadRefused = series{"eddy_script_reloads_refused_total", counter, nil, "New versions of the script refused: incompatible state, a load error or a failing inline test."}
	luaTime       = series{"eddy_lua_seconds_total", counter, []string{"hook"}, "Time spent in the script per hook, estimated from about one call in 64."}
	statusUp      = series{"eddy_status_up", gauge, nil, "1 when the node answered its status at this scrape; 0 while it starts (the partition series are absent then)."}
)

// Series lists every series the collector can expose.
var Series = []series{
	recordsRead, recordsKept, recordsFailed, recordsLate,
	sinkRows, sinkErrors, sinkRetries, sinkFlush, endToEnd,
	batchLatency, fireLatency,
	partitions, partLag, partOffset, partCaughtUp,
	partRestoring, partRestored, partToRestore, restored, standbys, standbyOffset, standbyRead,
	checkpoints, cpFailed, cpDuration, cpLast, cpLastTime,
	stateKeys, stateBytes, watermark, watermarkLag, reloads, reloadRefused, luaTime, statusUp,
}

// latencyBounds are the histograms' bucket bounds.
var latencyBounds = []time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
	30 * time.Second, time.Minute,
}

// collector reads a run's series at each scrape.
type collector struct {
	run   Run
	descs map[string]*prometheus.Desc
}

func newCollector(run Run) *collector {
	c := &collector{run: run, descs: map[string]*prometheus.Desc{}}
	constant := prometheus.Labels{"pipeline": run.Pipeline.Name, "node": run.Node}
	for _, s := range Series {
		c.descs[s.name] = prometheus.NewDesc(s.name, s.help, s.labels, constant)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.run.Stats
	emit := func(s series, v float64, labels ...string) {
		t := prometheus.GaugeValue
		if s.kind == counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[s.name], t, v, labels...)
	}
	emit(recordsRead, float64(st.Read.Load()))
	emit(recordsKept, float64(st.Kept.Load()))
	emit(recordsFailed, float64(st.Failed.Load()))
	emit(recordsLate, float64(st.Late.Load()))
	emit(partitions, float64(st.Partitions.Load()))
	emit(restored, float64(st.Restored.Load()))
	emit(standbyRead, float64(st.StandbyChanges.Load()))
	if offsets := st.StandbyOffsets.Load(); offsets != nil {
		for id, off := range *offsets {
			emit(standbyOffset, float64(off), id)
		}
	}
	emit(checkpoints, float64(st.Checkpoints.Load()))
	emit(cpFailed, float64(st.CheckpointsFailed.Load()))
	emit(cpLast, float64(st.LastCheckpoint.Load()))
	ch <- c.histogram(batchLatency, &st.BatchLatency)
	ch <- c.histogram(fireLatency, &st.FireLatency)
	ch <- c.histogram(cpDuration, &st.CheckpointLatency)
	st.Sinks(func(name string, ss *actors.SinkStats) {
		emit(sinkRows, float64(ss.Rows.Load()), name)
		emit(sinkErrors, float64(ss.Errors.Load()), name)
		emit(sinkRetries, float64(ss.Retries()), name)
		ch <- c.histogram(sinkFlush, &ss.Flush, name)
		if ss.EndToEnd.Count() > 0 { // once measured (not for final windows)
			ch <- c.histogram(endToEnd, &ss.EndToEnd, name)
		}
	})
	p := c.run.Pipeline
	for i, d := range p.LuaTime() {
		emit(luaTime, d.Seconds(), scripting.HookNames[i])
	}
	if p.HasEventTime() {
		if wm := st.Watermark.Load(); wm != 0 {
			emit(watermark, float64(wm)/1000)
			emit(watermarkLag, time.Since(time.UnixMilli(wm)).Seconds())
		}
	}
	c.collectStatus(emit)
}

// collectStatus adds the series of the node's status.
func (c *collector) collectStatus(emit func(s series, v float64, labels ...string)) {
	if c.run.Status == nil {
		emit(statusUp, 0)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	st, err := c.run.Status(ctx)
	if err != nil {
		emit(statusUp, 0)
		return
	}
	emit(statusUp, 1)
	emit(stateBytes, float64(st.StateBytes))
	emit(standbys, float64(len(st.Standbys)))
	if cp := st.Checkpoint; cp != nil {
		emit(stateKeys, float64(cp.Keys))
		emit(cpLastTime, float64(cp.Time.UnixMilli())/1000)
	}
	if s := st.Script; s != nil {
		emit(reloads, float64(s.Reloads))
		emit(reloadRefused, float64(s.Refused))
	}
	for _, ps := range st.Partitions {
		if ps.Lag != nil {
			emit(partLag, float64(*ps.Lag), ps.ID)
		}
		if ps.Offset != nil {
			emit(partOffset, float64(*ps.Offset), ps.ID)
		}
		emit(partCaughtUp, bool01(ps.CaughtUp), ps.ID)
		emit(partRestoring, bool01(ps.Restoring), ps.ID)
		emit(partRestored, float64(ps.Restored), ps.ID)
		emit(partToRestore, float64(ps.ToRestore), ps.ID)
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// histogram is l as a Prometheus histogram over latencyBounds, in seconds.
func (c *collector) histogram(s series, l *actors.Latency, labels ...string) prometheus.Metric {
	cum := l.Cumulative(latencyBounds)
	// Read after the buckets, the count is at least their total.
	count := max(uint64(l.Count()), cum[len(cum)-1])
	buckets := make(map[float64]uint64, len(latencyBounds))
	for i, b := range latencyBounds {
		buckets[b.Seconds()] = cum[i]
	}
	return prometheus.MustNewConstHistogram(c.descs[s.name], count, l.Sum().Seconds(), buckets, labels...)
}
