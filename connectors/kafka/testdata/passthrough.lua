-- Every record through, unaggregated: {"n": N} in, {"n": N} out.
return {
  name = "passthrough",
  parse = eddy.json { n = "integer" },
}
