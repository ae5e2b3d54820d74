-- string.gmatch backtracking exponentially: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      for m in string.gmatch(string.rep("a", 5000), ".-.-.-.-.-.-.-.-b") do end
    end
    return { line = line }
  end,
}
