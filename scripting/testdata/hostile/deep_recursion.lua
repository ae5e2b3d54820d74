-- recursion without end: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      local function f(n) return 1 + f(n + 1) end
      f(1)
    end
    return { line = line }
  end,
}
