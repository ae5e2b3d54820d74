-- coroutines are not in the sandbox: the record "bomb" fails with the limit named, others pass.
return {
  parse = function(line)
    if line == "bomb" then
      coroutine.wrap(function() end)()
    end
    return { line = line }
  end,
}
