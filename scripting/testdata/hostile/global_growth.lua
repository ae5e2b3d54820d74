-- a global table of tables filled in a loop: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      big = {}
      for i = 1, 1e9 do big[#big + 1] = { i } end
    end
    return { line = line }
  end,
}
