-- a __concat metamethod that doubles: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local mt = {}
      mt.__concat = function(a, b) return setmetatable({ s = a.s .. a.s }, mt) end
      local v = setmetatable({ s = "x" }, mt)
      while true do v = v .. "" end
    end
    return { line = line }
  end,
}
