-- json.decode of a document nested 10,000 deep: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      json.decode(string.rep("[", 1e4) .. string.rep("]", 1e4))
    end
    return { line = line }
  end,
}
