-- loadstring of a doubling concat: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local f = loadstring("local s = 'x' while true do s = s .. s end")
      f()
    end
    return { line = line }
  end,
}
