-- string.upper of a 2 MB string, kept a hundred times: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local s = string.rep("x", 2e6)
      local t = {}
      for i = 1, 100 do t[i] = s:upper() end
    end
    return { line = line }
  end,
}
