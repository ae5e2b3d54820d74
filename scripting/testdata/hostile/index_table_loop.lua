-- two tables, each the other's __index: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local a, b = {}, {}
      setmetatable(a, { __index = b })
      setmetatable(b, { __index = a })
      return { line = a.x }
    end
    return { line = line }
  end,
}
