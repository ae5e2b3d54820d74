-- json.decode of four million numbers: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      json.decode("[" .. string.rep("1,", 4e6) .. "1]")
    end
    return { line = line }
  end,
}
