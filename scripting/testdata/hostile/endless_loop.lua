-- an endless loop: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      while true do end
    end
    return { line = line }
  end,
}
