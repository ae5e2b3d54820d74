-- a format width that would build a huge string: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      return { line = string.format("%999999999d", 1) }
    end
    return { line = line }
  end,
}
