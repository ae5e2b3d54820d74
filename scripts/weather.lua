-- Seed 004: current weather for a set of cities from OpenWeatherMap's API,
-- parsed into city, country, wind speed, temperature and humidity, written
-- to the Kafka topic weather, upserted into the Cassandra table weather
-- (city is the primary key: the table holds each city's latest
-- observation) and appended to a CSV backup file.
--
--   export OWM_API_KEY=…                      # your OpenWeatherMap key
--   eddy topics create weather                # Kafka does not create topics itself
--   eddy run scripts/weather.lua --state /var/lib/eddy/weather
--
-- No key? The same pipeline on generated API responses:
--   eddy run scripts/weather.lua --source 'gen:weather?count=100' --until-idle
--
-- The source polls one URL per city id every 10 minutes; the key is sent as
-- appid and never shows in logs, errors or checkpoints. Temperatures come in
-- kelvin (the API's default units) and are stored in °C, wind in m/s.

local CITIES = "4887398,2643743,2988507,1850147,5128581" -- Chicago, London, Paris, Tokyo, New York

local function round(x, places)
  local p = 10 ^ places
  return math.floor(x * p + 0.5) / p
end

return {
  name = "weather",
  source = "https://api.openweathermap.org/data/2.5/weather?id=" .. CITIES
    .. "&each=id&interval=10m&key-env=OWM_API_KEY&key-param=appid",

  parse = function(body)
    local w = json.decode(body)
    if type(w) ~= "table" then error("not a JSON object") end
    if w.cod ~= nil and tostring(w.cod) ~= "200" then
      error("the API answered " .. tostring(w.cod) .. ": " .. tostring(w.message))
    end
    local main, wind, sys = w.main, w.wind, w.sys
    if type(w.name) ~= "string" or type(main) ~= "table" or type(wind) ~= "table" or type(sys) ~= "table" then
      error("not an OpenWeatherMap current-weather response (name, main, wind, sys)")
    end
    if type(main.temp) ~= "number" or type(main.humidity) ~= "number" or type(wind.speed) ~= "number" or type(w.dt) ~= "number" then
      error("main.temp, main.humidity, wind.speed and dt must be numbers")
    end
    return {
      city = w.name,
      country = sys.country,
      wind_speed = wind.speed,
      temperature = round(main.temp - 273.15, 2),
      humidity = main.humidity,
      observed_at = time.format(w.dt),
    }
  end,

  route = function(r)
    return { "topic", "weather", "backup" }
  end,

  sinks = {
    topic = "kafka://127.0.0.1:9092/weather",
    weather = "cassandra://127.0.0.1:9042/eddy_weather/weather?create=true&key=city"
      .. "&schema=city:text,country:text,wind_speed:double,temperature:double,humidity:int,observed_at:timestamp",
    backup = "file:weather.csv",
  },

  tests = {
    {
      name = "parses the API's answer, rejects its errors",
      input = {
        '{"coord":{"lon":-87.65,"lat":41.85},"weather":[{"id":803,"main":"Clouds","description":"broken clouds","icon":"04d"}],"base":"stations","main":{"temp":281.52,"feels_like":278.99,"temp_min":280.15,"temp_max":283.15,"pressure":1016,"humidity":93},"visibility":16093,"wind":{"speed":3.1,"deg":240},"clouds":{"all":75},"dt":1588792020,"sys":{"type":1,"id":4861,"country":"US","sunrise":1588762023,"sunset":1588813015},"timezone":-18000,"id":4887398,"name":"Chicago","cod":200}',
        '{"cod":"404","message":"city not found"}',
        '<html><body>502 Bad Gateway</body></html>',
      },
      want_outputs = {
        weather = {
          { city = "Chicago", country = "US", wind_speed = 3.1, temperature = 8.37, humidity = 93, observed_at = "2020-05-06T19:07:00Z" },
        },
        backup = {
          { city = "Chicago", country = "US", wind_speed = 3.1, temperature = 8.37, humidity = 93, observed_at = "2020-05-06T19:07:00Z" },
        },
        topic = {
          { city = "Chicago", country = "US", wind_speed = 3.1, temperature = 8.37, humidity = 93, observed_at = "2020-05-06T19:07:00Z" },
        },
      },
      dead_letters = 2,
    },
  },
}
