-- a table filled in a loop: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local t = {}
      for i = 1, 1e9 do t[i] = i end
    end
    return { line = line }
  end,
}
