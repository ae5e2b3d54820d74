-- sum.lua, but opting in to invalid UTF-8 and raw control bytes in JSON strings.
return {
  parse = eddy.json({ dev = "string", n = "number" }, { invalid_utf8 = "keep" }),
  key = "dev",
  aggregate = { n = eddy.sum("n") },
  order_by = { "dev" },
  emit = "final",
}
