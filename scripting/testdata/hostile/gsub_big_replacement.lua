-- gsub with a replacement of 6 MB, ten times: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local big = string.rep("x", 6e6)
      local r = string.gsub(string.rep("a", 10), "a", big)
    end
    return { line = line }
  end,
}
