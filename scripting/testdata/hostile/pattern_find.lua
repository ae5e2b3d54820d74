-- string.find backtracking exponentially: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      string.find(string.rep("a", 5000), ".-.-.-.-.-.-.-.-b")
    end
    return { line = line }
  end,
}
