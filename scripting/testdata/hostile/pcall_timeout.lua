-- pcall around an endless loop, in a loop: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      while true do pcall(function() while true do end end) end
    end
    return { line = line }
  end,
}
