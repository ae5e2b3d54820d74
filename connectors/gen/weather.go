package gen

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// WeatherCity is one city the weather generator and the stand-in API know,
// with OpenWeatherMap's city id.
type WeatherCity struct {
	ID       int64
	Name     string
	Country  string
	Lon, Lat float64
	Timezone int64   // seconds from UTC
	BaseTemp float64 // a typical temperature, kelvin
}

// WeatherCities are the cities of gen:weather, in the order it cycles
// through them.
var WeatherCities = []WeatherCity{
	{4887398, "Chicago", "US", -87.65, 41.85, -18000, 283},
	{2643743, "London", "GB", -0.1257, 51.5085, 0, 284},
	{2988507, "Paris", "FR", 2.3488, 48.8534, 3600, 285},
	{1850147, "Tokyo", "JP", 139.6917, 35.6895, 32400, 289},
	{5128581, "New York", "US", -74.006, 40.7143, -18000, 286},
	{2147714, "Sydney", "AU", 151.2073, -33.8679, 36000, 291},
	{3451190, "Rio de Janeiro", "BR", -43.2075, -22.9028, -10800, 297},
	{1273294, "Delhi", "IN", 77.2167, 28.6667, 19800, 298},
	{2950159, "Berlin", "DE", 13.4105, 52.5244, 3600, 283},
	{993800, "Johannesburg", "ZA", 28.0436, -26.2023, 7200, 289},
}

// WeatherCityByID returns the city with OpenWeatherMap id, and whether it is
// known.
func WeatherCityByID(id int64) (WeatherCity, bool) {
	for _, c := range WeatherCities {
		if c.ID == id {
			return c, true
		}
	}
	return WeatherCity{}, false
}

// weather makes OpenWeatherMap "current weather" responses (seed 004's
// API), one JSON object per line, cycling through WeatherCities ten
// minutes apart, so the weather pipeline runs with no API key. A bad line
// is one a flaky API or proxy returns instead.
type weather struct{}

func (weather) Ext() string { return ".json" }

// WeatherStart is the dt of record 0: 2020-05-06 19:07:00 UTC, the time of
// seed 004's run.
const WeatherStart = 1588792020

func (weather) Lines(r *rand.Rand) func([]byte, int64, bool) []byte {
	return func(b []byte, i int64, bad bool) []byte {
		n := int64(len(WeatherCities))
		c := WeatherCities[i%n]
		if bad {
			switch r.IntN(3) {
			case 0:
				return append(b, `{"cod":"404","message":"city not found"}`...)
			case 1:
				return append(b, `<html><body>502 Bad Gateway</body></html>`...)
			default:
				full := AppendWeather(nil, c, WeatherStart+i/n*600, r)
				return append(b, full[:len(full)/2]...)
			}
		}
		return AppendWeather(b, c, WeatherStart+i/n*600, r)
	}
}

// AppendWeather appends an OpenWeatherMap current-weather response for city
// c at Unix time dt, its readings drawn from r.
func AppendWeather(b []byte, c WeatherCity, dt int64, r *rand.Rand) []byte {
	round := func(f float64, places int) float64 {
		p := math.Pow(10, float64(places))
		return math.Round(f*p) / p
	}
	temp := round(c.BaseTemp+r.NormFloat64()*4, 2)
	humidity := 30 + r.IntN(70)
	wind := round(r.ExpFloat64()*4, 2)
	deg := r.IntN(360)
	clouds := r.IntN(101)
	conds := []struct {
		id         int
		main, desc string
		icon       string
	}{{800, "Clear", "clear sky", "01d"}, {803, "Clouds", "broken clouds", "04d"}, {500, "Rain", "light rain", "10d"}, {701, "Mist", "mist", "50d"}}
	cond := conds[r.IntN(len(conds))]
	f := func(v float64) []byte { return strconv.AppendFloat(nil, v, 'f', -1, 64) }
	b = append(b, `{"coord":{"lon":`...)
	b = append(b, f(c.Lon)...)
	b = append(b, `,"lat":`...)
	b = append(b, f(c.Lat)...)
	b = append(b, `},"weather":[{"id":`...)
	b = strconv.AppendInt(b, int64(cond.id), 10)
	b = append(b, `,"main":"`+cond.main+`","description":"`+cond.desc+`","icon":"`+cond.icon+`"}],"base":"stations","main":{"temp":`...)
	b = append(b, f(temp)...)
	b = append(b, `,"feels_like":`...)
	b = append(b, f(round(temp-wind*0.7, 2))...)
	b = append(b, `,"temp_min":`...)
	b = append(b, f(round(temp-1.5, 2))...)
	b = append(b, `,"temp_max":`...)
	b = append(b, f(round(temp+1.5, 2))...)
	b = append(b, `,"pressure":`...)
	b = strconv.AppendInt(b, int64(995+r.IntN(40)), 10)
	b = append(b, `,"humidity":`...)
	b = strconv.AppendInt(b, int64(humidity), 10)
	b = append(b, `},"visibility":10000,"wind":{"speed":`...)
	b = append(b, f(wind)...)
	b = append(b, `,"deg":`...)
	b = strconv.AppendInt(b, int64(deg), 10)
	b = append(b, `},"clouds":{"all":`...)
	b = strconv.AppendInt(b, int64(clouds), 10)
	b = append(b, `},"dt":`...)
	b = strconv.AppendInt(b, dt, 10)
	b = append(b, `,"sys":{"type":1,"id":4861,"country":"`+c.Country+`","sunrise":`...)
	b = strconv.AppendInt(b, dt-dt%86400+6*3600-c.Timezone, 10)
	b = append(b, `,"sunset":`...)
	b = strconv.AppendInt(b, dt-dt%86400+20*3600-c.Timezone, 10)
	b = append(b, `},"timezone":`...)
	b = strconv.AppendInt(b, c.Timezone, 10)
	b = append(b, `,"id":`...)
	b = strconv.AppendInt(b, c.ID, 10)
	b = append(b, `,"name":"`+c.Name+`","cod":200}`...)
	return b
}
