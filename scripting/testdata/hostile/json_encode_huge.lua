-- json.encode of a table of 10 MB: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local t = {}
      for i = 1, 4e5 do t[i] = i end
      json.encode(t)
    end
    return { line = line }
  end,
}
