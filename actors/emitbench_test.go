package actors

import (
	"fmt"
	"testing"

	"github.com/eddy-stream/eddy/scripting"
)

// BenchmarkEmitFinalWindows: the emitter's cost a window of a final emit,
// as BenchmarkWindows' end has it: 10,000 windows fired in one partition
// (a trigger's worth), taken into the table and emitted. Each op is a
// window.
func BenchmarkEmitFinalWindows(b *testing.B) {
	const windows = 10_000
	p, err := scripting.LoadSource("windows.lua", []byte(`return {
		parse = eddy.json { sensor = "string", ts = "string", temp = "number" },
		event_time = "ts",
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
	accs, err := rt.NewAccs()
	if err != nil {
		b.Fatal(err)
	}
	portable, err := rt.Portable(accs)
	if err != nil {
		b.Fatal(err)
	}
	em := &Emitter{e: &engine{cfg: Config{Pipeline: p, Shards: 1}}, rt: rt, table: map[string]*resultEntry{},
		changed: map[string]struct{}{}, fired: map[string]int64{}}
	template := make([]partial, windows)
	for i := range template {
		sensor := fmt.Sprintf("sensor-%05d", i)
		template[i] = partial{key: windowKey(sensor, 0), keyVals: []any{sensor, "1970-01-01T00:00:00Z", "1970-01-01T00:01:00Z"},
			accs: portable, end: 60_000}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += windows {
		m := &resultRows{partition: "p1", fired: true, rows: append([]partial(nil), template...)}
		if err := em.update(m); err != nil {
			b.Fatal(err)
		}
		rows, err := em.rows(false, 60_000)
		if err != nil || len(rows) != windows {
			b.Fatalf("%d rows, %v; want %d", len(rows), err, windows)
		}
	}
}
