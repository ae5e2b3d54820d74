-- time.format with a 4 MB layout: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      time.format(0, string.rep("2006", 1e6))
    end
    return { line = line }
  end,
}
