-- a gsub callback returning 3 MB a match: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local r = string.gsub(string.rep("a", 100), "a", function() return string.rep("y", 3e6) end)
    end
    return { line = line }
  end,
}
