-- string.rep of a gigabyte: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      string.rep("x", 1e9)
    end
    return { line = line }
  end,
}
