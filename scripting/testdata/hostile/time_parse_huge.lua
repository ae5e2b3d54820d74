-- time.parse of a 6 MB string: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      time.parse(string.rep("2", 6e6))
    end
    return { line = line }
  end,
}
