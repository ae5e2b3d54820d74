package gen_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
)

func TestWeatherConformance(t *testing.T) {
	connectortest.TestSource(t, open("gen:weather?count=2500&bad=0.02"), connectortest.SourceOptions{})
}

// TestWeatherShape checks the lines have the OpenWeatherMap fields seed
// 004's pipeline reads, cycling through the cities.
func TestWeatherShape(t *testing.T) {
	var buf bytes.Buffer
	n := int64(len(gen.WeatherCities))
	if err := gen.Write(&buf, "weather", 1, 0, 2*n, 0); err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n")) {
		var w struct {
			Name string `json:"name"`
			ID   int64  `json:"id"`
			Sys  struct {
				Country string `json:"country"`
			} `json:"sys"`
			Main struct {
				Temp     float64 `json:"temp"`
				Humidity int     `json:"humidity"`
			} `json:"main"`
			Wind struct {
				Speed *float64 `json:"speed"`
			} `json:"wind"`
			Dt int64 `json:"dt"`
		}
		if err := json.Unmarshal(line, &w); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		c := gen.WeatherCities[int64(i)%n]
		if w.Name != c.Name || w.ID != c.ID || w.Sys.Country != c.Country || w.Wind.Speed == nil || w.Main.Temp < 200 || w.Main.Humidity < 1 {
			t.Fatalf("line %d: %s", i, line)
		}
		if want := gen.WeatherStart + int64(i)/n*600; w.Dt != want {
			t.Fatalf("line %d: dt %d, want %d", i, w.Dt, want)
		}
	}
}
