package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
	_ "github.com/eddy-stream/eddy/connectors/http"
	"github.com/eddy-stream/eddy/connectors/http/weatherapi"
)

const secret = "s3cr3t-KEY/+="

func open(t *testing.T, uri string) connectors.Source {
	t.Helper()
	s, err := connectors.OpenSource(uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func weatherURI(api *weatherapi.Server, params string) string {
	return api.Base() + "/data/2.5/weather?key-env=OWM_TEST_KEY&key-param=appid&" + params
}

func TestConformance(t *testing.T) {
	t.Setenv("OWM_TEST_KEY", secret)
	api := weatherapi.New(secret)
	defer api.Close()
	uri := weatherURI(api, "id=4887398,2643743&each=id&units=metric&interval=10ms")
	connectortest.TestSource(t, func(t *testing.T) connectors.Source { return open(t, uri) }, connectortest.SourceOptions{})
	connectortest.TestSource(t, func(t *testing.T) connectors.Source {
		return open(t, api.Base()+"/data/2.5/all?split=array&interval=10ms&key-env=OWM_TEST_KEY&key-param=appid")
	}, connectortest.SourceOptions{})
}

// read reads one batch with a deadline.
func read(t *testing.T, p connectors.Partition) connectors.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := p.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPollsEachCityAndHonoursETag(t *testing.T) {
	t.Setenv("OWM_TEST_KEY", secret)
	api := weatherapi.New(secret)
	defer api.Close()
	l := connectortest.Start(t, open(t, weatherURI(api, "id=4887398,2643743&each=id&interval=5ms")))
	parts := l.Partitions()
	if len(parts) != 2 {
		t.Fatalf("%d partitions, want one per city", len(parts))
	}
	for _, p := range parts {
		if strings.Contains(p.ID(), secret) || strings.Contains(p.ID(), "appid") {
			t.Fatalf("partition id %s shows the key", p.ID())
		}
	}
	chicago := parts[0]
	if !strings.Contains(chicago.ID(), "id=4887398") {
		t.Fatalf("first partition %s, want Chicago's", chicago.ID())
	}
	b := read(t, chicago)
	city, _ := gen.WeatherCityByID(4887398)
	if len(b.Records) != 1 || string(b.Records[0].Value) != string(api.Observation(city, false)) {
		t.Fatalf("first poll: %+v", b)
	}
	if !b.CaughtUp || b.Locate(0) != chicago.ID()+" poll 1" {
		t.Fatalf("batch %+v, locate %q", b, b.Locate(0))
	}
	// Unchanged: 304, no record.
	if b := read(t, chicago); len(b.Records) != 0 {
		t.Fatalf("unchanged weather gave %d records", len(b.Records))
	}
	if _, nm := api.Requests(); nm != 1 {
		t.Fatalf("%d 304 answers, want 1", nm)
	}
	api.Advance()
	b = read(t, chicago)
	if len(b.Records) != 1 || string(b.Records[0].Value) != string(api.Observation(city, false)) || b.Records[0].Seq != 2 {
		t.Fatalf("after Advance: %+v", b)
	}
	if strings.Contains(string(b.End), secret) || strings.Contains(chicago.Describe(b.End), secret) {
		t.Fatalf("position shows the key: %s", b.End)
	}
	// A restart from the checkpointed position sends If-None-Match: no duplicate.
	p2 := connectortest.Start(t, open(t, weatherURI(api, "id=4887398,2643743&each=id&interval=5ms"))).Partition(chicago.ID())
	if err := p2.Seek(b.End); err != nil {
		t.Fatal(err)
	}
	if b := read(t, p2); len(b.Records) != 0 {
		t.Fatalf("restart re-emitted an unchanged response: %s", b.Records[0].Value)
	}
}

func TestRetriesServerErrorsAndTimeouts(t *testing.T) {
	api := weatherapi.New("")
	defer api.Close()
	api.FailNext(503, 500, 429)
	p := connectortest.Start(t, open(t, api.Base()+"/data/2.5/weather?id=2643743&interval=1s")).Partitions()[0]
	b := read(t, p)
	if len(b.Records) != 1 {
		t.Fatalf("got %d records after retries", len(b.Records))
	}
	if n, _ := api.Requests(); n != 4 {
		t.Fatalf("%d requests, want 3 failures and a success", n)
	}
	api.Delay(300 * time.Millisecond)
	api.Advance()
	p = connectortest.Start(t, open(t, api.Base()+"/data/2.5/weather?id=2643743&timeout=100ms&retry-for=1s")).Partitions()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := p.Read(ctx)
	if err == nil || !strings.Contains(err.Error(), "gave up after") || !strings.Contains(err.Error(), "Timeout") {
		t.Fatalf("got %v, want a timeout given up after retry-for", err)
	}
	api.Delay(0)
}

func TestErrors(t *testing.T) {
	t.Setenv("OWM_TEST_KEY", secret)
	t.Setenv("OWM_WRONG_KEY", "wrong-"+secret)
	api := weatherapi.New(secret)
	defer api.Close()
	tests := []struct {
		name        string
		uri         string
		errContains string
	}{
		{"wrong key", api.Base() + "/data/2.5/weather?id=4887398&key-env=OWM_WRONG_KEY&key-param=appid", "401 Unauthorized (is the API key right?)"},
		{"no key", api.Base() + "/data/2.5/weather?id=4887398", "Invalid API key"},
		{"unknown city", weatherURI(api, "id=1"), `404 Not Found (does what the URL names exist?): {"cod":"404","message":"city not found"}`},
		{"bad split", weatherURI(api, "id=4887398&split=array"), "split=array: the response is not a JSON array"},
		{"nothing listens", "http://127.0.0.1:1/x?key-env=OWM_TEST_KEY&key-param=appid&retry-for=100ms", "connection refused"},
		{"unknown host", "http://no-such-host.invalid/x?key-env=OWM_TEST_KEY&key-param=appid&retry-for=100ms", "no-such-host.invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := connectortest.Start(t, open(t, tt.uri)).Partitions()[0]
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := p.Read(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got error %v, want one containing %q", err, tt.errContains)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("the error shows the key: %v", err)
			}
		})
	}
	openErrors := []struct {
		name        string
		uri         string
		errContains string
	}{
		{"key env unset", api.Base() + "/x?key-env=OWM_NOPE_KEY&key-param=appid", "OWM_NOPE_KEY is empty or unset"},
		{"key env without param", api.Base() + "/x?key-env=OWM_TEST_KEY", "needs key-param=NAME"},
		{"key in the URI", api.Base() + "/x?key-env=OWM_TEST_KEY&key-param=appid&appid=zzz", "put the key in the environment variable"},
		{"each without values", api.Base() + "/x?each=id", "each=id: the URI has no id="},
		{"bad interval", api.Base() + "/x?interval=often", `interval="often"`},
		{"bad split", api.Base() + "/x?split=lines", `split="lines"`},
	}
	for _, tt := range openErrors {
		t.Run(tt.name, func(t *testing.T) {
			_, err := connectors.OpenSource(tt.uri, nil)
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got error %v, want one containing %q", err, tt.errContains)
			}
		})
	}
}

// TestRedactsTheKeyInTransportErrors checks the error of a request that
// never got an answer, whose text Go's client builds from the full URL.
func TestRedactsTheKeyInTransportErrors(t *testing.T) {
	t.Setenv("OWM_TEST_KEY", secret)
	p := connectortest.Start(t, open(t, "http://127.0.0.1:1/data?id=1&key-env=OWM_TEST_KEY&key-param=appid&retry-for=50ms")).Partitions()[0]
	_, err := p.Read(context.Background())
	if err == nil || !strings.Contains(err.Error(), "appid=REDACTED") {
		t.Fatalf("got %v, want the key redacted", err)
	}
	var se interface{ Timeout() bool }
	if errors.As(err, &se) {
		t.Logf("timeout: %v", se.Timeout())
	}
}

func TestSplitArray(t *testing.T) {
	api := weatherapi.New("")
	defer api.Close()
	p := connectortest.Start(t, open(t, api.Base()+"/data/2.5/all?split=array&units=metric")).Partitions()[0]
	b := read(t, p)
	if len(b.Records) != len(gen.WeatherCities) {
		t.Fatalf("%d records, want one per city", len(b.Records))
	}
	for i, r := range b.Records {
		var w struct {
			Name string `json:"name"`
			Main struct {
				Temp float64 `json:"temp"`
			} `json:"main"`
		}
		if err := json.Unmarshal(r.Value, &w); err != nil {
			t.Fatal(err)
		}
		if w.Name != gen.WeatherCities[i].Name || w.Main.Temp > 60 || w.Main.Temp < -40 {
			t.Fatalf("record %d: %s", i, r.Value)
		}
	}
}
