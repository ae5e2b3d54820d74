-- pcall around a memory bomb, in a loop: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      while true do
        pcall(function() local s = "x" while true do s = s .. s end end)
      end
    end
    return { line = line }
  end,
}
