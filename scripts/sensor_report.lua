-- Seed 002: temperature sensors. Per sensor, 1-minute tumbling windows of
-- readings in event time (average, min, max); an alert when a window's
-- readings depart from the sensor's previous window average by more than
-- THRESHOLD; an alert when a sensor sends nothing for SILENCE seconds.
-- Windows and alerts go to the same report sink.
--
--   eddy run scripts/sensor_report.lua --until-idle
--   eddy gen sensors --count 360000 --files 6 --out readings/
--   eddy run scripts/sensor_report.lua --source dir:readings --until-idle
--   eddy run scripts/sensor_report.lua --source kafka://127.0.0.1:9092/sensors?group=report \
--     --sink kafka://127.0.0.1:9092/sensor-report --to alerts=kafka://127.0.0.1:9092/sensor-report

local THRESHOLD = 8  -- °C
local SILENCE = 300  -- seconds

return {
  name = "sensor_report",
  source = "gen:sensors?count=360000",

  parse = eddy.json { sensor = "string", ts = "string", temp = "number", site = "string?" },
  -- The gateway's heartbeat is not a temperature sensor.
  filter = function(r) return r.sensor ~= "s-heartbeat" end,

  -- Readings come up to 5s out of order; allow 10s. A reading dated more
  -- than a day ahead of the clock is a broken sensor clock: dead letters.
  event_time = "ts",
  watermark = { out_of_order = "10s", idle_timeout = "1m", max_future = "24h" },

  key = "sensor",
  window = eddy.tumbling("1m"),
  aggregate = { readings = eddy.count(), avg = eddy.avg("temp"), min = eddy.min("temp"), max = eddy.max("temp") },
  columns = { "readings", "avg", "min", "max" },
  emit = "final",

  -- Every reading pushes the sensor's silence timer to SILENCE seconds
  -- after its latest reading (readings come out of order: keep the latest).
  on_record = function(r, ctx)
    local due = ctx.time + SILENCE
    if (ctx.timer("silence") or 0) < due then
      ctx.set_timer("silence", due)
    end
  end,

  -- A window whose readings stray from the previous window's average.
  on_window = function(w, ctx)
    local prev = ctx.state.avg
    if prev then
      local high, low = w.max - prev, prev - w.min
      if high > THRESHOLD or low > THRESHOLD then
        ctx.emit("alerts", {
          alert = "anomaly", sensor = ctx.key, window_start = w.window_start,
          value = high >= low and w.max or w.min, previous_avg = prev,
        })
      end
    end
    ctx.state.avg = w.avg
  end,

  -- No reading for SILENCE seconds of event time. (At the end of the input
  -- every timer fires: that is not silence.)
  on_timer = function(name, ctx)
    if not ctx.ended then
      ctx.emit("alerts", {
        alert = "missing", sensor = ctx.key,
        last_reading = time.format(ctx.time - SILENCE), silent_for = SILENCE,
      })
    end
  end,

  sinks = { results = "stdout", alerts = "stdout", late = "stderr" },

  tests = {
    {
      -- s-3's reading moves event time past both silences before s-1 and
      -- s-2 come back: the watermark is what notices a sensor is quiet.
      name = "windows, anomalies and silence, out of order",
      input = {
        '{"sensor":"s-1","ts":"2024-03-01T00:00:05.000Z","temp":20.0}',
        '{"sensor":"s-2","ts":"2024-03-01T00:00:03.000Z","temp":18.0}',
        '{"sensor":"s-1","ts":"2024-03-01T00:00:01.000Z","temp":22.0}',
        '{"sensor":"s-1","ts":"2024-03-01T00:01:10.000Z","temp":35.5}',
        '{"sensor":"s-heartbeat","ts":"2024-03-01T00:01:11.000Z","temp":20.0}',
        '{"sensor":"s-2","ts":"2024-03-01T00:01:02.000Z","temp":18.5}',
        '{"sensor":"s-3","ts":"2024-03-01T00:06:30.000Z","temp":19.0}',
        '{"sensor":"s-1","ts":"2024-03-01T00:07:00.000Z","temp":21.0}',
        '{"sensor":"s-2","ts":"2024-03-01T00:07:01.000Z","temp":18.0}',
        '{"sensor":"s-1","ts":"yesterday","temp":1}',
        '{"sensor":"s-1","ts":"2099-01-01T00:00:00.000Z","temp":1}',
        '{"sensor":"s-2","ts":"2024-03-01T00:00:30.000Z","temp":50}',
      },
      want = {
        { sensor = "s-1", window_start = "2024-03-01T00:00:00.000Z", window_end = "2024-03-01T00:01:00.000Z", readings = 2, avg = 21, min = 20, max = 22 },
        { sensor = "s-2", window_start = "2024-03-01T00:00:00.000Z", window_end = "2024-03-01T00:01:00.000Z", readings = 1, avg = 18, min = 18, max = 18 },
        { sensor = "s-1", window_start = "2024-03-01T00:01:00.000Z", window_end = "2024-03-01T00:02:00.000Z", readings = 1, avg = 35.5, min = 35.5, max = 35.5 },
        { sensor = "s-2", window_start = "2024-03-01T00:01:00.000Z", window_end = "2024-03-01T00:02:00.000Z", readings = 1, avg = 18.5, min = 18.5, max = 18.5 },
        { sensor = "s-3", window_start = "2024-03-01T00:06:00.000Z", window_end = "2024-03-01T00:07:00.000Z", readings = 1, avg = 19, min = 19, max = 19 },
        { sensor = "s-1", window_start = "2024-03-01T00:07:00.000Z", window_end = "2024-03-01T00:08:00.000Z", readings = 1, avg = 21, min = 21, max = 21 },
        { sensor = "s-2", window_start = "2024-03-01T00:07:00.000Z", window_end = "2024-03-01T00:08:00.000Z", readings = 1, avg = 18, min = 18, max = 18 },
      },
      want_outputs = {
        alerts = {
          { alert = "anomaly", sensor = "s-1", window_start = "2024-03-01T00:01:00.000Z", value = 35.5, previous_avg = 21 },
          { alert = "anomaly", sensor = "s-1", window_start = "2024-03-01T00:07:00.000Z", value = 21, previous_avg = 35.5 },
          { alert = "missing", sensor = "s-1", last_reading = "2024-03-01T00:01:10Z", silent_for = 300 },
          { alert = "missing", sensor = "s-2", last_reading = "2024-03-01T00:01:02Z", silent_for = 300 },
        },
      },
      late = 1,
      dead_letters = 2,
    },
  },
}
