-- table.concat of 100 references to one 1 MB string: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local s = string.rep("x", 1e6)
      local t = {}
      for i = 1, 100 do t[i] = s end
      table.concat(t)
    end
    return { line = line }
  end,
}
