-- s = s .. s doubles until it is over the limit: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local s = "x"
      while true do s = s .. s end
    end
    return { line = line }
  end,
}
