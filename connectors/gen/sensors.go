package gen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

// sensors makes JSON lines of temperature readings for seed 002's pipeline
// (sensors → Kafka → event-time windows):
//
//	{"sensor":"s-0042","ts":"2024-03-01T10:00:07.000Z","temp":21.37,"site":"plant-3"}
//
// Every sensor reads once per interval of event time from a fixed start, so
// in order, record i would be sensor i % N at slot i / N. Three things make
// it realistic, each a pure function of (seed, i) through hashes of the
// seed, the sensor and the slot rather than of the block's random stream,
// so they hold across block boundaries:
//
//   - Disorder. The readings are cut into shuffle windows of W slots,
//     W = delay/interval + 1, and each window's W·N readings come out in a
//     pseudorandom order (a Feistel permutation keyed by seed and window).
//     Windows follow each other in order, so a reading is never behind a
//     later one by more than (W-1)·interval ≤ delay, and the stream is a
//     permutation of the in-order one: delay changes the order, not the
//     readings.
//   - Silence. Time is cut into epochs of 10 minutes per sensor; in each,
//     with the probability that gap per reading gives over the epoch, the
//     sensor falls silent for 6-10 minutes from a random slot. A silent
//     sensor emits nothing: the slot's record is a reading of the extra
//     sensor "s-heartbeat" (site "gateway") with that slot's ts instead, so
//     every index still yields one line and every slot exactly N lines. The
//     heartbeat reads at a varying rate (none with gap=0); a pipeline may
//     drop it or treat it as a sensor like any other.
//   - Spikes. With probability spike a reading jumps by ±15-30 °C. Otherwise
//     a sensor's temperature is a slow sine (period 1-6 h, amplitude
//     0.5-2 °C) around its own level in 17.5-22.5 °C, plus noise of at most
//     ±0.6 °C: within 15-25 °C.
//
// Bad lines (drawn from the block's stream, like the other generators) are
// a reading without ts, with ts "yesterday", with temp as a string or
// null, cut short, or, rarely, with ts in the year 2099.
//
// Tests elsewhere should compute their expectations from the generated
// lines themselves (parse them) rather than from this schedule.
type sensors struct {
	c   SensorsConfig
	key uint64 // from the seed
}

// SensorsConfig is what gen:sensors takes besides seed, count, rate and bad,
// as URI parameters (gen:sensors?sensors=10&delay=2s) or in a generator
// name for Write ("sensors?sensors=10&delay=2s"; see Name).
type SensorsConfig struct {
	// Sensors is how many sensors read, s-0000 …; parameter sensors,
	// default 100.
	Sensors int64
	// Interval is the event time between two readings of a sensor, a
	// whole number of milliseconds; parameter interval, default 1s.
	Interval time.Duration
	// Start is the event time of the first readings, in whole
	// milliseconds; parameter start (RFC 3339), default
	// 2024-03-01T00:00:00Z.
	Start time.Time
	// Delay bounds the disorder: no reading comes after one whose ts is
	// more than Delay later. Parameter delay, default 5s; 0 is in order.
	Delay time.Duration
	// Gap is the probability per reading that a sensor falls silent for
	// 6-10 minutes of event time; parameter gap, default 0.001.
	Gap float64
	// Spike is the probability that a reading jumps by ±15-30 °C;
	// parameter spike, default 0.002.
	Spike float64
}

// DefaultSensorsConfig returns gen:sensors' defaults.
func DefaultSensorsConfig() SensorsConfig {
	return SensorsConfig{
		Sensors:  100,
		Interval: time.Second,
		Start:    time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
		Delay:    5 * time.Second,
		Gap:      0.001,
		Spike:    0.002,
	}
}

// Name is the generator name for Write, WriteDir and Lookup: "sensors",
// with the parameters that differ from the defaults appended as a query.
func (c SensorsConfig) Name() string {
	if q := c.query(); q != "" {
		return "sensors?" + q
	}
	return "sensors"
}

// query is c's canonical form: the parameters that differ from the
// defaults, in a fixed order.
func (c SensorsConfig) query() string {
	d := DefaultSensorsConfig()
	var q []string
	if c.Sensors != d.Sensors {
		q = append(q, "sensors="+strconv.FormatInt(c.Sensors, 10))
	}
	if c.Interval != d.Interval {
		q = append(q, "interval="+c.Interval.String())
	}
	if !c.Start.Equal(d.Start) {
		q = append(q, "start="+c.Start.UTC().Format(time.RFC3339Nano))
	}
	if c.Delay != d.Delay {
		q = append(q, "delay="+c.Delay.String())
	}
	if c.Gap != d.Gap {
		q = append(q, "gap="+strconv.FormatFloat(c.Gap, 'g', -1, 64))
	}
	if c.Spike != d.Spike {
		q = append(q, "spike="+strconv.FormatFloat(c.Spike, 'g', -1, 64))
	}
	return strings.Join(q, "&")
}

func (c SensorsConfig) validate() error {
	switch {
	case c.Sensors < 1 || c.Sensors > 1e8:
		return fmt.Errorf("gen:sensors: sensors=%d is outside [1, 100000000]", c.Sensors)
	case c.Interval < time.Millisecond || c.Interval%time.Millisecond != 0:
		return fmt.Errorf("gen:sensors: interval=%s is not a positive whole number of milliseconds", c.Interval)
	case c.Start.Nanosecond()%int(time.Millisecond) != 0:
		return fmt.Errorf("gen:sensors: start=%s is not a whole number of milliseconds", c.Start.Format(time.RFC3339Nano))
	case c.Delay < 0:
		return fmt.Errorf("gen:sensors: delay=%s is negative", c.Delay)
	case !(c.Gap >= 0 && c.Gap <= 1) || !(c.Spike >= 0 && c.Spike <= 1):
		return fmt.Errorf("gen:sensors: gap=%g and spike=%g must be in [0, 1]", c.Gap, c.Spike)
	}
	return nil
}

// parseSensorsConfig reads the parameters gen:sensors knows from q and
// ignores the rest (seed, count, rate, bad, a command line's settings).
func parseSensorsConfig(q url.Values) (SensorsConfig, error) {
	c := DefaultSensorsConfig()
	t := connectors.Target{Params: q}
	var err error
	if c.Sensors, err = t.IntParam("sensors", c.Sensors, 1); err != nil {
		return c, fmt.Errorf("gen:sensors: %w", err)
	}
	if c.Interval, err = t.DurationParam("interval", c.Interval); err != nil {
		return c, fmt.Errorf("gen:sensors: %w", err)
	}
	if s := q.Get("start"); s != "" {
		if c.Start, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return c, fmt.Errorf("gen:sensors: parameter start=%q is not an RFC 3339 time such as 2024-03-01T00:00:00Z", s)
		}
		c.Start = c.Start.UTC()
	}
	if s := q.Get("delay"); s != "" {
		if c.Delay, err = time.ParseDuration(s); err != nil {
			return c, fmt.Errorf("gen:sensors: parameter delay=%q is not a duration such as 5s or 0", s)
		}
	}
	if c.Gap, err = t.FloatParam("gap", c.Gap, 0, 1); err != nil {
		return c, fmt.Errorf("gen:sensors: %w", err)
	}
	if c.Spike, err = t.FloatParam("spike", c.Spike, 0, 1); err != nil {
		return c, fmt.Errorf("gen:sensors: %w", err)
	}
	return c, c.validate()
}

func (s sensors) configure(q url.Values) (Generator, string, error) {
	c, err := parseSensorsConfig(q)
	if err != nil {
		return nil, "", err
	}
	return sensors{c: c, key: s.key}, c.query(), nil
}

func (s sensors) withSeed(seed int64) Generator {
	s.key = mix(uint64(seed) ^ 0x5e9505e9505e9505)
	return s
}

func (sensors) Ext() string { return ".json" }

// Hash tags keep the hashes of different draws apart.
const (
	tagPerm = iota + 1
	tagGap
	tagGapShape
	tagLevel
	tagWave
	tagNoise
	tagSpike
	tagHeartbeat
)

// heartbeat is the sensor number of s-heartbeat.
const heartbeat = -1

// sensorPlan is what Lines derives from the config once per block.
type sensorPlan struct {
	c                    SensorsConfig
	key                  uint64
	n                    int64  // sensors
	w                    int64  // slots per shuffle window
	span                 uint64 // readings per shuffle window, n·w
	half                 uint   // bits per Feistel half: 4^half ≥ span
	epoch                int64  // slots per silence epoch
	pEpoch               float64
	minSilent, maxSilent int64 // slots a silence lasts
	startMs, stepMs      int64
}

func (s sensors) plan() *sensorPlan {
	c := s.c
	p := &sensorPlan{c: c, key: s.key, n: c.Sensors, startMs: c.Start.UnixMilli(), stepMs: c.Interval.Milliseconds()}
	p.w = int64(c.Delay/c.Interval) + 1
	p.span = uint64(p.n * p.w)
	for uint64(1)<<(2*p.half) < p.span {
		p.half++
	}
	ceil := func(d time.Duration) int64 { return int64((d + c.Interval - 1) / c.Interval) }
	p.minSilent, p.maxSilent = ceil(6*time.Minute), ceil(10*time.Minute)
	p.epoch = p.maxSilent
	p.pEpoch = 1 - math.Pow(1-c.Gap, float64(p.epoch))
	return p
}

// reading is one line's content before it is written.
type reading struct {
	sensor int64 // heartbeat for s-heartbeat
	slot   int64
	temp   float64
}

// at returns the reading record i carries.
func (p *sensorPlan) at(i int64) reading {
	win, j := uint64(i)/p.span, uint64(i)%p.span
	if p.w > 1 {
		j = p.permute(win, j)
	}
	slot := int64(win)*p.w + int64(j)/p.n
	k := int64(j) % p.n
	if p.silent(k, slot) {
		// 20 °C ± 0.5: the gateway's own thermometer.
		return reading{sensor: heartbeat, slot: slot, temp: 19.5 + unit(hash(p.key, tagHeartbeat, uint64(k), uint64(slot)))}
	}
	return reading{sensor: k, slot: slot, temp: p.temp(k, slot)}
}

// permute is a bijection of [0, span) keyed by the seed and the window: a
// 4-round Feistel network on 2·half bits, walked until it lands inside.
func (p *sensorPlan) permute(win, j uint64) uint64 {
	mask := uint64(1)<<p.half - 1
	x := j
	for {
		l, r := x>>p.half, x&mask
		for round := range uint64(4) {
			l, r = r, l^(hash(p.key, tagPerm+round<<8, win, r)&mask)
		}
		x = l<<p.half | r
		if x < p.span {
			return x
		}
	}
}

// silent reports whether sensor k is silent at slot: a silence starts in
// an epoch with probability pEpoch and lasts at most an epoch, so only the
// slot's epoch and the one before can hold it.
func (p *sensorPlan) silent(k, slot int64) bool {
	if p.pEpoch == 0 {
		return false
	}
	e := slot / p.epoch
	for _, ep := range [2]int64{e, e - 1} {
		if ep < 0 || unit(hash(p.key, tagGap, uint64(k), uint64(ep))) >= p.pEpoch {
			continue
		}
		h := hash(p.key, tagGapShape, uint64(k), uint64(ep))
		start := ep*p.epoch + int64(h%uint64(p.epoch))
		length := p.minSilent + int64((h>>32)%uint64(p.maxSilent-p.minSilent+1))
		if slot >= start && slot < start+length {
			return true
		}
	}
	return false
}

// temp is sensor k's reading at slot: its level, a slow sine, noise and
// now and then a spike.
func (p *sensorPlan) temp(k, slot int64) float64 {
	ku, su := uint64(k), uint64(slot)
	level := 17.5 + 5*unit(hash(p.key, tagLevel, ku, 0))
	w := hash(p.key, tagWave, ku, 0)
	amp := 0.5 + 1.5*unit(w)
	period := 3600 * (1 + 5*unit(mix(w)))
	phase := 2 * math.Pi * unit(mix(w^tagWave))
	secs := float64(slot*p.stepMs) / 1000
	n := hash(p.key, tagNoise, ku, su)
	noise := 0.4 * (unit(n) + unit(mix(n)) + unit(mix(n^tagNoise)) - 1.5)
	t := level + amp*math.Sin(2*math.Pi*secs/period+phase) + noise
	if sp := hash(p.key, tagSpike, ku, su); unit(sp) < p.c.Spike {
		jump := 15 + 15*unit(mix(sp))
		if mix(sp^tagSpike)&1 == 0 {
			jump = -jump
		}
		t += jump
	}
	return t
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func hash(key, tag, a, b uint64) uint64 {
	return mix(mix(mix(key^tag*0x9e3779b97f4a7c15)+a) + b)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// Ways to write a reading.
const (
	sensorGood = iota
	sensorNoTS
	sensorTSWord
	sensorTempString
	sensorTempNull
	sensorFuture
)

func (s sensors) Lines(r *rand.Rand) func([]byte, int64, bool) []byte {
	p := s.plan()
	var scratch []byte
	return func(b []byte, i int64, bad bool) []byte {
		rd := p.at(i)
		if !bad {
			return p.append(b, rd, sensorGood)
		}
		switch k := r.IntN(20); {
		case k < 4:
			return p.append(b, rd, sensorNoTS)
		case k < 8:
			return p.append(b, rd, sensorTSWord)
		case k < 11:
			return p.append(b, rd, sensorTempString)
		case k < 14:
			return p.append(b, rd, sensorTempNull)
		case k < 19: // cut short: a strict prefix of an object never parses
			scratch = p.append(scratch[:0], rd, sensorGood)
			return append(b, scratch[:1+r.IntN(len(scratch)-2)]...)
		default:
			return p.append(b, rd, sensorFuture)
		}
	}
}

const tsLayout = "2006-01-02T15:04:05.000Z"

func (p *sensorPlan) append(b []byte, rd reading, mode int) []byte {
	b = append(b, `{"sensor":"`...)
	if rd.sensor == heartbeat {
		b = append(b, "s-heartbeat"...)
	} else {
		b = append(b, "s-"...)
		for d := int64(1000); d > 1 && rd.sensor < d; d /= 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, rd.sensor, 10)
	}
	b = append(b, '"')
	ts := time.UnixMilli(p.startMs + rd.slot*p.stepMs).UTC()
	switch mode {
	case sensorNoTS:
	case sensorTSWord:
		b = append(b, `,"ts":"yesterday"`...)
	case sensorFuture:
		b = append(b, `,"ts":"`...)
		b = ts.AddDate(2099-ts.Year(), 0, 0).AppendFormat(b, tsLayout)
		b = append(b, '"')
	default:
		b = append(b, `,"ts":"`...)
		b = ts.AppendFormat(b, tsLayout)
		b = append(b, '"')
	}
	switch mode {
	case sensorTempString:
		b = append(b, `,"temp":"`...)
		b = strconv.AppendFloat(b, rd.temp, 'f', 2, 64)
		b = append(b, '"')
	case sensorTempNull:
		b = append(b, `,"temp":null`...)
	default:
		b = append(b, `,"temp":`...)
		b = strconv.AppendFloat(b, rd.temp, 'f', 2, 64)
	}
	if rd.sensor == heartbeat {
		return append(b, `,"site":"gateway"}`...)
	}
	b = append(b, `,"site":"plant-`...)
	b = strconv.AppendInt(b, 1+rd.sensor%5, 10)
	return append(b, `"}`...)
}
