-- Sums a field eddy.json never passes on: refused at load, not 0 per row.
return {
  parse = eddy.json { dev = "string", n = "number" },
  key = "dev",
  aggregate = { b = eddy.sum("nosuch") },
  emit = "final",
}
