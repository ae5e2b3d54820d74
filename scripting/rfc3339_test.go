package scripting

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestRFC3339MillisAgrees: the direct reading of UTC times gives what
// time.Parse gives, the same milliseconds or an error, for the times
// streams write and for strings near them that are not valid times.
func TestRFC3339MillisAgrees(t *testing.T) {
	cases := []string{
		"2024-03-01T00:00:05.000Z", "2024-03-01T00:00:05Z", "2024-02-29T23:59:59.999Z", "2023-02-29T00:00:00Z",
		"1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.9999999Z", "0000-01-01T00:00:00Z",
		"1600-02-29T12:00:00.5Z", "1900-02-29T12:00:00Z", "2000-02-29T12:00:00Z", "9999-12-31T23:59:59.999999999Z",
		"2024-03-01T00:00:05.1234567891Z", "2024-03-01T00:00:05.Z", "2024-03-01T24:00:00Z", "2024-03-01T23:60:00Z",
		"2024-03-01T23:59:60Z", "2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-04-31T00:00:00Z", "2024-04-00T00:00:00Z",
		"2024-03-01t00:00:05Z", "2024-03-01T00:00:05z", "2024-03-01T00:00:05+00:00", "2024-03-01T01:00:05.25+01:00",
		"2024-03-01 00:00:05Z", "2024-3-01T00:00:05Z", "+024-03-01T00:00:05Z", "2024-03-01T00:00:05,123Z", "",
		"2024-03-01T00:00:05.12a4Z", "2024-03-01T00:00:0aZ", "20240301T000005Z",
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		ms := rnd.Int64N(400*365*86400_000) - 200*365*86400_000
		s := time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
		cases = append(cases, s, s[:19]+"Z", s[:23]+fmt.Sprint(rnd.IntN(1000000))+"Z")
		b := []byte(s)
		b[rnd.IntN(len(b))] = "0123456789:-.TZ+x"[rnd.IntN(17)] // often no longer a valid time
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, werr := time.Parse(time.RFC3339Nano, s)
		got, err := rfc3339Millis(s)
		switch {
		case (err != nil) != (werr != nil):
			t.Fatalf("%q: error %v, time.Parse's %v", s, err, werr)
		case err == nil && got != want.UnixMilli():
			t.Fatalf("%q: %d ms, time.Parse's %d", s, got, want.UnixMilli())
		}
	}
}

// BenchmarkRFC3339Millis is the event time of a UTC time string, beside
// time.Parse.
func BenchmarkRFC3339Millis(b *testing.B) {
	const s = "2024-03-01T00:00:05.000Z"
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if _, err := rfc3339Millis(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("time.Parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
