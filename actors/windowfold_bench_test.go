package actors

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/benchrun"
	"github.com/eddy-stream/eddy/scripting"
)

// BenchmarkWindowFold folds records into a shard's event-time windows the
// way bench-windows does (10,000 sensors reading each second, in an order
// shuffled anew each second as the generator's are, so that neither side
// finds its state in the order it was made; one-minute tumbling windows, a count, avg, min and max; batches of 512;
// a barrier, which fires and emits, every 200 batches), without parsing,
// actors or checkpoints: the shard's own cost a record, beside a plain-Go
// fold of the same records into maps (one map of windows by start, one of
// accumulators by sensor, as BenchmarkWindows' baseline does). Each op is
// a record; cpu-ns/op is the process's CPU time a record (user and
// system, GC included), which a loaded machine inflates less than ns/op.
func BenchmarkWindowFold(b *testing.B) {
	const sensors, batch = 10_000, 512
	p, err := scripting.LoadSource("windows.lua", []byte(`return {
		parse = eddy.json { sensor = "string", ts = "number", temp = "number" },
		event_time = "ts",
		watermark = { out_of_order = "10s" },
		key = "sensor",
		window = eddy.tumbling("1m"),
		aggregate = { readings = eddy.count(), avg = eddy.avg("temp"), min = eddy.min("temp"), max = eddy.max("temp") },
		emit = "final",
	}`))
	if err != nil {
		b.Fatal(err)
	}
	rt, err := p.NewRuntime(false)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	// one record a sensor, its time and watermark set as it is folded
	tmpl := make([]scripting.Keyed, sensors)
	temps := make([]float64, sensors)
	for s := range tmpl {
		temps[s] = 20 + float64(s%97)/10
		k, _, _, err := rt.Process(fmt.Appendf(nil, `{"sensor":"sensor-%05d","ts":0,"temp":%v}`, s, temps[s]))
		if err != nil {
			b.Fatal(err)
		}
		tmpl[s] = k
	}
	var orders [16][]int // the sensors' order in each second, in turn
	rng := rand.New(rand.NewPCG(7, 16))
	for i := range orders {
		orders[i] = rng.Perm(sensors)
	}
	record := func(n int, k *scripting.Keyed) int {
		s := orders[(n/sensors)%len(orders)][n%sensors]
		*k = tmpl[s]
		k.Time = int64(n/sensors) * 1000
		k.Watermark = k.Time - 10_000
		return s
	}
	src := &connectors.Batch{Records: make([]connectors.Record, batch)}
	idx := make([]int, batch)
	b.Run("shard", func(b *testing.B) {
		e := &engine{cfg: Config{Pipeline: p, Stats: &Stats{}}}
		a := newAggregator(e, "p0", 0, 1, 0, 1)
		if err := a.start(nil); err != nil {
			b.Fatal(err)
		}
		ctx := &sends{}
		rows := make([]scripting.Keyed, batch)
		b.ReportAllocs()
		defer benchrun.ReportCPU(b)()
		for n, seq := 0, uint64(0); n < b.N; n += batch {
			rows = rows[:min(batch, b.N-n)]
			for j := range rows {
				record(n+j, &rows[j])
			}
			a.add(ctx, &keyedBatch{rows: rows, src: src, idx: idx})
			if (n/batch)%200 == 199 {
				seq++
				if ack := a.onBarrier(ctx, &barrier{seq: seq, watermark: rows[len(rows)-1].Watermark}); ack == nil || ack.err != nil {
					b.Fatalf("barrier: %v", ack)
				}
			}
		}
	})
	b.Run("baseline", func(b *testing.B) {
		type acc struct {
			n             int64
			sum, min, max float64
		}
		open := map[int64]map[string]*acc{}
		var k scripting.Keyed
		fired := 0
		b.ReportAllocs()
		defer benchrun.ReportCPU(b)()
		for n := range b.N {
			s := record(n, &k)
			start := k.Time / 60_000 * 60_000
			for st, bySensor := range open {
				if st+60_000 <= k.Watermark && n%batch == 0 {
					fired += len(bySensor)
					delete(open, st)
				}
			}
			if open[start] == nil {
				open[start] = map[string]*acc{}
			}
			x := temps[s]
			a := open[start][k.Key]
			if a == nil {
				a = &acc{min: x, max: x}
				open[start][k.Key] = a
			}
			a.n++
			a.sum += x
			a.min, a.max = min(a.min, x), max(a.max, x)
		}
		_ = fired
	})
}
