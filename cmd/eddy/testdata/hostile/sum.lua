-- A small pipeline for the hostile inputs beside it: the sum of n per dev.
return {
  parse = eddy.json { dev = "string", n = "number" },
  key = "dev",
  aggregate = { n = eddy.sum("n") },
  order_by = { "dev" },
  emit = "final",
}
