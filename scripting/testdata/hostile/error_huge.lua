-- error with a 10 MB message: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      error(string.rep("x", 1e7))
    end
    return { line = line }
  end,
}
