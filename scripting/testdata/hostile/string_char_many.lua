-- string.char with many arguments, kept: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local codes = {}
      for i = 1, 200000 do codes[i] = 120 end
      local parts = {}
      for i = 1, 1e6 do parts[i] = string.char(unpack(codes)) end
    end
    return { line = line }
  end,
}
