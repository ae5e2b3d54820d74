-- One row per distinct id: a partition's state with as many keys as the
-- input has ids (BenchmarkCluster's restore of a moved partition).
return {
  name = "count_ids",
  parse = eddy.json { id = "string" },
  key = "id",
  aggregate = { count = eddy.count() },
  emit = "final",
}
