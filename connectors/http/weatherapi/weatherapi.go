// Package weatherapi is a stand-in for OpenWeatherMap's current-weather API
// (seed 004) on a local port, for tests and demos that must not need the
// internet or a key: GET /data/2.5/weather?id=CITY&appid=KEY[&units=metric]
// answers like the real API, with the cities of gen.WeatherCities, and GET
// /data/2.5/all answers a JSON array of every city.
//
// Readings change only when the test calls Advance, and each answer has an
// ETag and a Last-Modified, so conditional requests get 304 Not Modified
// until then. FailNext makes the next requests fail, for retry tests.
package weatherapi

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eddy-stream/eddy/connectors/gen"
)

// Server is a running stand-in API.
type Server struct {
	*httptest.Server
	key string

	mu       sync.Mutex
	version  int64
	fail     []int // statuses of the next requests
	delay    time.Duration
	requests int
	notMod   int
}

// New starts a stand-in that accepts the API key key ("" accepts any).
func New(key string) *Server {
	s := &Server{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/data/2.5/weather", s.weather)
	mux.HandleFunc("/data/2.5/all", s.all)
	s.Server = httptest.NewServer(mux)
	return s
}

// Base returns the base URL with host and port, such as http://127.0.0.1:4567.
func (s *Server) Base() string { return s.Server.URL }

// Advance makes every city report a new observation, ten minutes later.
func (s *Server) Advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
}

// FailNext makes the next len(statuses) requests answer those statuses.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, statuses...)
}

// Delay makes every answer wait d first (0 to stop), for timeout tests.
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns how many requests came, and how many were answered
// 304 Not Modified.
func (s *Server) Requests() (all, notModified int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.notMod
}

// Observation returns what the API answers now for city, as the JSON body.
func (s *Server) Observation(city gen.WeatherCity, metric bool) []byte {
	s.mu.Lock()
	v := s.version
	s.mu.Unlock()
	return observation(city, v, metric)
}

func observation(c gen.WeatherCity, version int64, metric bool) []byte {
	r := rand.New(rand.NewPCG(uint64(c.ID), uint64(version)))
	b := gen.AppendWeather(nil, c, gen.WeatherStart+version*600, r)
	if !metric {
		return b
	}
	// units=metric: the same readings in °C.
	var out []byte
	for _, field := range []string{`"temp":`, `"feels_like":`, `"temp_min":`, `"temp_max":`} {
		i := strings.Index(string(b), field)
		j := i + len(field)
		k := j + strings.IndexAny(string(b[j:]), ",}")
		f, _ := strconv.ParseFloat(string(b[j:k]), 64)
		out = append(append(append(out[:0], b[:j]...), strconv.FormatFloat(float64(int64((f-273.15)*100+0.5*sign(f-273.15)))/100, 'f', -1, 64)...), b[k:]...)
		b = append([]byte(nil), out...)
	}
	return b
}

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}

// begin counts the request, applies delay and injected failures, checks
// the key; it returns false when it has answered.
func (s *Server) begin(w http.ResponseWriter, r *http.Request) (version int64, ok bool) {
	s.mu.Lock()
	s.requests++
	delay := s.delay
	fail := 0
	if len(s.fail) > 0 {
		fail, s.fail = s.fail[0], s.fail[1:]
	}
	version = s.version
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return 0, false
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if fail != 0 {
		w.WriteHeader(fail)
		fmt.Fprintf(w, `{"cod":%d,"message":"injected failure"}`, fail)
		return 0, false
	}
	if s.key != "" && r.URL.Query().Get("appid") != s.key {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"cod":401, "message": "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info."}`)
		return 0, false
	}
	return version, true
}

// conditional sets ETag and Last-Modified and answers 304 when the client
// has this version already.
func (s *Server) conditional(w http.ResponseWriter, r *http.Request, tag string, version int64) bool {
	etag := `"` + tag + "-" + strconv.FormatInt(version, 10) + `"`
	modified := time.Unix(gen.WeatherStart+version*600, 0).UTC().Format(http.TimeFormat)
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", modified)
	if r.Header.Get("If-None-Match") == etag || (r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == modified) {
		s.mu.Lock()
		s.notMod++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	return false
}

func (s *Server) weather(w http.ResponseWriter, r *http.Request) {
	version, ok := s.begin(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	id, err := strconv.ParseInt(q.Get("id"), 10, 64)
	city, known := gen.WeatherCityByID(id)
	if err != nil || !known {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"cod":"404","message":"city not found"}`)
		return
	}
	if s.conditional(w, r, q.Get("id"), version) {
		return
	}
	w.Write(observation(city, version, q.Get("units") == "metric"))
}

func (s *Server) all(w http.ResponseWriter, r *http.Request) {
	version, ok := s.begin(w, r)
	if !ok {
		return
	}
	if s.conditional(w, r, "all", version) {
		return
	}
	b := []byte{'['}
	for i, c := range gen.WeatherCities {
		if i > 0 {
			b = append(b, ',', '\n')
		}
		b = append(b, observation(c, version, r.URL.Query().Get("units") == "metric")...)
	}
	w.Write(append(b, ']'))
}
