-- The netflow seed's count (flows to ports 80 and 443 per destination)
-- without the top-20 limit, so the tables of several processes can be
-- added up key by key.
local web = { ["80"] = true, ["443"] = true }
return {
  name = "flows_all",
  parse = eddy.json { dstdevice = "string", dstport = "string|number" },
  filter = function(flow) return web[tostring(flow.dstport)] == true end,
  key = "dstdevice",
  aggregate = { count = eddy.count() },
  emit = "update",
}
