-- Nexmark q8, monitor new users: the persons who opened an auction in the
-- same 10-second tumbling window as they registered (the SQL joins the
-- persons of each window with the distinct sellers of that window's
-- auctions). A semi join: each person once per window, when the first of
-- their auctions in it arrives.
--
--   eddy run scripts/nexmark/q8.lua --source person=dir:nexmark/person,auction=dir:nexmark/auction --sink file:q8.jsonl --until-idle

return {
  sources = {
    person = {
      uri = "file:scripts/nexmark/testdata/q8/persons.json",
      parse = eddy.json{ id = "integer", name = "string", dateTime = "string" },
      event_time = "dateTime",
    },
    auction = {
      uri = "file:scripts/nexmark/testdata/q8/auctions.json",
      parse = eddy.json{ seller = "integer", dateTime = "string" },
      event_time = "dateTime",
    },
  },
  join = eddy.join{
    left = "person", right = "auction", on = { "id", "seller" },
    window = eddy.tumbling("10s"), kind = "semi",
    select = { "person.id", "person.name", "window_start as starttime" },
  },
  watermark = { out_of_order = "0s" },
}
