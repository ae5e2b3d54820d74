-- Seed 001: web-server logs sorted into good, bad and suspicious.
--
--   bad         the log breaks the schema: not a JSON object, a field
--               missing or null, or a field of the wrong type
--   suspicious  the device differs from the users table's device for the
--               account (or the account is not in the users table)
--   good        neither
--
-- Every log goes, with its status, to the Kafka topic server-logs-status;
-- good, bad and suspicious logs go to their own MySQL tables (upserts, so a
-- replay after a crash leaves each table exact); the results are running
-- counts per status. The users table is a lookup, cached and re-read every
-- 30 s, and on a miss, so a user added to it is seen without a restart.
--
--   just mysql-up kafka-up
--   mariadb … < scripts/server_logs.sql     # the databases, tables and users
--   eddy topics create server-logs-status   # (or your Kafka's tool)
--   EDDY_MYSQL_PASSWORD=eddy eddy run scripts/server_logs.lua
--
-- The generator's logs (gen:serverlogs) refer to the users in
-- scripts/server_logs.sql; --source kafka://127.0.0.1:9092/server-logs reads
-- a real feed instead, and --to NAME=URI points a sink elsewhere.

local FIELDS = {
  { "request_id", "string" }, { "timestamp", "string" }, { "account_id", "integer" },
  { "device", "string" }, { "ip", "string" }, { "method", "string" },
  { "request", "string" }, { "status_code", "integer" }, { "bytes", "integer" },
}

local function bad(line, reason)
  return { status = "bad", reason = reason, raw = line }
end

-- schema_error says what is wrong with a decoded log, nil when nothing is.
local function schema_error(line, log)
  for _, f in ipairs(FIELDS) do
    local name, want = f[1], f[2]
    local v = log[name]
    if v == nil then
      -- json.decode turns null into nil: the line says which it was.
      if line:find('"' .. name .. '":%s*null') then
        return "field " .. name .. " is null"
      end
      return "field " .. name .. " is missing"
    end
    local ok
    if want == "integer" then
      ok = type(v) == "number" and v == math.floor(v)
    else
      ok = type(v) == want
    end
    if not ok then
      return "field " .. name .. " has the wrong type (want " .. want .. ")"
    end
  end
  return nil
end

return {
  name = "server_logs",
  source = "gen:serverlogs?count=100000&rate=2000",

  lookups = {
    users = { source = "mysql://eddy@127.0.0.1:3306/dim_users/users", key = "account_id", refresh = "30s" },
  },

  parse = function(line)
    local ok, log = pcall(json.decode, line)
    if not ok or type(log) ~= "table" or log[1] ~= nil then
      return bad(line, "not a JSON object")
    end
    local why = schema_error(line, log)
    if why then
      return bad(line, why)
    end
    local r = {}
    for _, f in ipairs(FIELDS) do
      r[f[1]] = log[f[1]]
    end
    local user = lookup("users", r.account_id)
    if user == nil then
      r.status = "suspicious"
      r.reason = string.format("account %d is not in the users table", r.account_id)
    elseif user.device ~= r.device then
      r.status = "suspicious"
      r.reason = "device " .. r.device .. " differs from the user's device " .. user.device
    else
      r.status = "good"
    end
    return r
  end,

  -- each log to its status's table, and every log to the status topic
  route = function(r)
    return { r.status, "status" }
  end,

  key = "status",
  aggregate = { logs = eddy.count() },
  emit = "update",

  sinks = {
    good = "mysql://eddy@127.0.0.1:3306/server_logs/good_logs?upsert=request_id",
    suspicious = "mysql://eddy@127.0.0.1:3306/server_logs/suspicious_logs?upsert=request_id",
    bad = "mysql://eddy@127.0.0.1:3306/server_logs/bad_logs?upsert=raw",
    status = "kafka://127.0.0.1:9092/server-logs-status",
    results = "stdout",
  },

  -- Only bad logs here: they are classified without the users table, so
  -- `eddy test` runs with no database. scripts/server_logs_test.go runs
  -- the whole pipeline against MariaDB and Kafka.
  tests = {
    {
      name = "schema breakage is bad, with the reason",
      input = {
        '{"request_id":"a1","timestamp":"2020-05-01T00:00:00Z","account_id":1001,"device":"mobile","ip":"10.0.0.1","method":"GET","request":"/","status_code":200}',
        '{"request_id":"a2","timestamp":"2020-05-01T00:00:00Z","account_id":null,"device":"mobile","ip":"10.0.0.1","method":"GET","request":"/","status_code":200,"bytes":1}',
        '{"request_id":"a3","timestamp":"2020-05-01T00:00:00Z","account_id":"1001","device":"mobile","ip":"10.0.0.1","method":"GET","request":"/","status_code":200,"bytes":1}',
        '{"request_id":"a4","timestamp":"2020-05-01T00:00:00Z","account_id":1001,"device":["mobile"],"ip":"10.0.0.1","method":"GET","request":"/","status_code":200,"bytes":1}',
        '{"request_id":"a5","timestamp":"2020-05-01T00:',
        '[1,2]',
      },
      want = { { status = "bad", logs = 6 } },
      want_outputs = {
        bad = {
          { status = "bad", reason = "field bytes is missing", raw = '{"request_id":"a1","timestamp":"2020-05-01T00:00:00Z","account_id":1001,"device":"mobile","ip":"10.0.0.1","method":"GET","request":"/","status_code":200}' },
          { status = "bad", reason = "field account_id is null", raw = '{"request_id":"a2","timestamp":"2020-05-01T00:00:00Z","account_id":null,"device":"mobile","ip":"10.0.0.1","method":"GET","request":"/","status_code":200,"bytes":1}' },
          { status = "bad", reason = "field account_id has the wrong type (want integer)", raw = '{"request_id":"a3","timestamp":"2020-05-01T00:00:00Z","account_id":"1001","device":"mobile","ip":"10.0.0.1","method":"GET","request":"/","status_code":200,"bytes":1}' },
          { status = "bad", reason = "field device has the wrong type (want string)", raw = '{"request_id":"a4","timestamp":"2020-05-01T00:00:00Z","account_id":1001,"device":["mobile"],"ip":"10.0.0.1","method":"GET","request":"/","status_code":200,"bytes":1}' },
          { status = "bad", reason = "not a JSON object", raw = '{"request_id":"a5","timestamp":"2020-05-01T00:' },
          { status = "bad", reason = "not a JSON object", raw = "[1,2]" },
        },
      },
    },
  },
}
