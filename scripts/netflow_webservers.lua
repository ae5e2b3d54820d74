-- Seed 003: which devices are web servers? The top 20 destination devices
-- by number of flows to port 80 or 443, in the LANL netflow data.
--
--   eddy gen netflow --count 1000000 --files 50 --out flows/
--   eddy run scripts/netflow_webservers.lua --source dir:flows --until-idle --emit final
--
-- The same script streams: one file per trigger, the whole table each time.
--
--   eddy run scripts/netflow_webservers.lua --source dir:flows --max-files-per-trigger 1 --emit complete

return {
  name = "netflow_webservers",
  source = "gen:netflow?count=200000&seed=7",

  -- Go reads only these two fields of each JSON line, checked against their
  -- types: a line without them, or with the wrong types, goes to the
  -- dead-letter output.
  parse = eddy.json { dstdevice = "string", dstport = "string|number" },

  -- dstport is a string in the LANL files ("80"); some exports carry
  -- numbers. The filter is declarative, so Go runs it and no record enters
  -- Lua; it keeps what this function would:
  --   local web = { ["80"] = true, ["443"] = true, [80] = true, [443] = true }
  --   filter = function(flow) return web[flow.dstport] == true end,
  filter = eddy.is_in("dstport", { "80", "443", 80, 443 }),

  key = "dstdevice",
  aggregate = { count = eddy.count() },
  order_by = { "count desc", "dstdevice" },
  limit = 20,
  emit = "final",
  sinks = { results = "stdout" },

  tests = {
    {
      name = "counts flows to 80 and 443 per destination, as strings or numbers",
      input = {
        '{"dstdevice":"Comp1","dstport":"80"}',
        '{"dstdevice":"Comp1","dstport":443}',
        '{"dstdevice":"Comp2","dstport":"443"}',
        '{"dstdevice":"Comp2","dstport":"22"}',
        '{"dstdevice":"Comp3","dstport":"Port8080"}',
        '{"dstdevice":"EnterpriseAppServer","dstport":"80","srcdevice":"Comp9"}',
        '{"dstdevice":"EnterpriseAppServer","dstport":"443"}',
        '{"dstdevice":"EnterpriseAppServer","dstport":"80"}',
      },
      want = {
        { dstdevice = "EnterpriseAppServer", count = 3 },
        { dstdevice = "Comp1", count = 2 },
        { dstdevice = "Comp2", count = 1 },
      },
      dead_letters = 0,
    },
    {
      name = "malformed lines go to dead letters and are not counted",
      input = {
        '{"dstdevice":"Comp1","dstport":"80"}',
        '{"dstdevice":"Comp1","dstport":"8',
        'Comp1,80',
        '{"dstdevice":"Comp1","dstport":{"port":80}}',
        '{"dstdevice":17,"dstport":"80"}',
        '{"dstport":"443"}',
        '[1,2,3]',
      },
      want = { { dstdevice = "Comp1", count = 1 } },
      dead_letters = 6,
    },
    {
      name = "ties rank by dstdevice, and only 20 rows are kept",
      input = (function()
        local lines = {}
        for i = 1, 25 do
          lines[#lines + 1] = string.format('{"dstdevice":"Comp%02d","dstport":"80"}', 26 - i)
        end
        return lines
      end)(),
      want = (function()
        local rows = {}
        for i = 1, 20 do
          rows[#rows + 1] = { dstdevice = string.format("Comp%02d", i), count = 1 }
        end
        return rows
      end)(),
    },
  },
}
