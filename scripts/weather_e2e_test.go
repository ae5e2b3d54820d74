package scripts_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/connectors/http/weatherapi"
	"github.com/eddy-stream/eddy/internal/testenv"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// weatherRow is what the pipeline should make of an API answer, computed
// in plain Go: "city|country|wind|temp|humidity|observed_at".
func weatherRow(t *testing.T, body []byte) string {
	t.Helper()
	var w struct {
		Name string `json:"name"`
		Dt   int64  `json:"dt"`
		Sys  struct {
			Country string `json:"country"`
		} `json:"sys"`
		Main struct {
			Temp     float64 `json:"temp"`
			Humidity int     `json:"humidity"`
		} `json:"main"`
		Wind struct {
			Speed float64 `json:"speed"`
		} `json:"wind"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatal(err)
	}
	temp := math.Floor((w.Main.Temp-273.15)*100+0.5) / 100
	return fmt.Sprintf("%s|%s|%v|%v|%d|%s", w.Name, w.Sys.Country, w.Wind.Speed, temp, w.Main.Humidity, time.Unix(w.Dt, 0).UTC().Format(time.RFC3339))
}

// TestWeatherEndToEnd polls the stand-in API for four cities, through the
// pipeline, into Kafka, real Cassandra and a CSV file; then again after the
// weather changed (the table holds the new observation per city, the CSV
// both); then once more with nothing new (ETags: nothing is written).
func TestWeatherEndToEnd(t *testing.T) {
	hosts := testenv.Cassandra(t)
	ks := testenv.NewKeyspace(t, hosts)
	sess := testenv.CassandraSession(t, hosts, ks)
	var brokers []string
	t.Run("kafka", func(t *testing.T) { brokers = testenv.Kafka(t) })
	topic := ""
	if brokers != nil {
		topic = testenv.NewTopic(t, brokers, 1)
	}
	const key = "test-owm-key-123"
	t.Setenv("OWM_TEST_KEY", key)
	api := weatherapi.New(key)
	defer api.Close()
	ids := []int64{4887398, 2643743, 1850147, 2147714}

	src, err := os.ReadFile("weather.lua")
	if err != nil {
		t.Fatal(err)
	}
	p, err := scripting.LoadSource("weather.lua", src, scripting.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "weather.csv")
	var idList []string
	for _, id := range ids {
		idList = append(idList, fmt.Sprint(id))
	}
	sourceURI := api.Base() + "/data/2.5/weather?id=" + strings.Join(idList, ",") + "&each=id&interval=20ms&key-env=OWM_TEST_KEY&key-param=appid"
	var topicRows []string
	run := func() {
		t.Helper()
		outputs := map[string]connectors.Sink{}
		for name, uri := range map[string]string{
			"weather": strings.Replace(strings.Replace(p.Sinks["weather"], "127.0.0.1:9042", strings.Join(hosts, ","), 1), "/eddy_weather/", "/"+ks+"/", 1),
			"backup":  "file:" + csvPath,
			"topic":   "kafka://" + strings.Join(brokers, ",") + "/" + topic,
		} {
			if name == "topic" && brokers == nil {
				mem := &connectortest.MemSink{}
				outputs[name] = mem
				defer func() {
					for _, r := range mem.Rows() {
						topicRows = append(topicRows, string(connectors.AppendJSON(nil, r)))
					}
				}()
				continue
			}
			s, err := connectors.OpenSink(uri)
			if err != nil {
				t.Fatal(err)
			}
			outputs[name] = s
		}
		source, err := connectors.OpenSource(sourceURI, nil)
		if err != nil {
			t.Fatal(err)
		}
		store, err := state.Open(filepath.Join(dir, "state"))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		dead := &connectortest.MemSink{}
		if _, err := actors.Run(context.Background(), actors.Config{Pipeline: p, Source: source, Store: store, Outputs: outputs,
			DeadLetters: dead, UntilIdle: true, MaxErrors: 0, Shards: 1, Workers: 1}); err != nil {
			t.Fatal(err)
		}
		if len(dead.Rows()) > 0 {
			t.Fatalf("dead letters: %v", dead.Rows())
		}
	}
	table := func() []string { return weatherTable(t, sess) }
	csvRows := func() []string {
		t.Helper()
		f, err := os.Open(csvPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(recs[0], ",") != "city,country,humidity,observed_at,temperature,wind_speed" {
			t.Fatalf("CSV header %v", recs[0])
		}
		var out []string
		for _, r := range recs[1:] {
			out = append(out, strings.Join([]string{r[0], r[1], r[5], r[4], r[2], r[3]}, "|"))
		}
		return out
	}
	expect := func() []string {
		var out []string
		for _, id := range ids {
			c, _ := gen.WeatherCityByID(id)
			out = append(out, weatherRow(t, api.Observation(c, false)))
		}
		return out
	}

	run()
	first := expect()
	sameLines(t, "Cassandra after the first poll", first, table())
	sameLines(t, "CSV after the first poll", first, csvRows())

	api.Advance()
	run()
	second := expect()
	sameLines(t, "Cassandra after the weather changed", second, table())
	sameLines(t, "CSV after the weather changed", append(append([]string(nil), first...), second...), csvRows())

	// Nothing changed: every answer of the third run is 304 Not Modified,
	// at least one a city (a loaded machine may poll a city twice before
	// the run sees it is idle).
	allBefore, before := api.Requests()
	run()
	allAfter, after := api.Requests()
	if got, polls := after-before, allAfter-allBefore; got != polls || got < len(ids) {
		t.Fatalf("third run: %d of %d answers were 304 Not Modified, want all of them and at least %d", got, polls, len(ids))
	}
	sameLines(t, "CSV after a poll with nothing new", append(append([]string(nil), first...), second...), csvRows())

	var want []string
	for _, r := range append(first, second...) {
		f := strings.Split(r, "|")
		want = append(want, fmt.Sprintf(`{"city":%q,"country":%q,"humidity":%s,"observed_at":%q,"temperature":%s,"wind_speed":%s}`, f[0], f[1], f[4], f[5], f[3], f[2]))
	}
	if brokers != nil {
		topicRows = readTopic(t, brokers, topic, len(want))
	}
	var got []string
	for _, r := range topicRows {
		got = append(got, canonicalJSON(t, []byte(r)))
	}
	for i := range want {
		want[i] = canonicalJSON(t, []byte(want[i]))
	}
	sameLines(t, "topic weather", want, got)
}

// weatherTable reads the weather table, a "|"-joined line a row.
func weatherTable(t *testing.T, sess *gocql.Session) []string {
	t.Helper()
	var out []string
	iter := sess.Query("SELECT city, country, wind_speed, temperature, humidity, observed_at FROM weather").Iter()
	var city, country string
	var wind, temp float64
	var hum int
	var at time.Time
	for iter.Scan(&city, &country, &wind, &temp, &hum, &at) {
		out = append(out, fmt.Sprintf("%s|%s|%v|%v|%d|%s", city, country, wind, temp, hum, at.UTC().Format(time.RFC3339)))
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
