-- an __index function that looks itself up: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local t = setmetatable({}, { __index = function(t, k) return t[k] end })
      return { line = t.x }
    end
    return { line = line }
  end,
}
