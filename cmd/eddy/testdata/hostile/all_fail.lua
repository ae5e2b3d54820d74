-- A filter that fails on every record: the run must not exit 0.
return {
  parse = eddy.json { dstdevice = "string" },
  filter = function(r) error("no filter today") end,
  key = "dstdevice",
  aggregate = { n = eddy.count() },
  emit = "final",
}
