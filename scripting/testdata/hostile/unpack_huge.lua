-- unpack of a hundred million values: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      unpack({}, 1, 1e8)
    end
    return { line = line }
  end,
}
