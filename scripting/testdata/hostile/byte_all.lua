-- string.byte of every byte of 10 MB: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      string.byte(string.rep("x", 1e7), 1, -1)
    end
    return { line = line }
  end,
}
