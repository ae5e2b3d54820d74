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
  tests = {
    {
      -- By hand: window [0s, 10s) has ann (1s) and her auctions at 3s and
      -- 4s (one row), bob (2s) whose auction is at 11s (the next window:
      -- none); window [10s, 20s) has cid (12s) and his auction at 15s.
      name = "persons with an auction in their window",
      input = {
        person = {
          '{"id":1,"name":"ann","dateTime":"2026-01-01T00:00:01.000Z"}',
          '{"id":2,"name":"bob","dateTime":"2026-01-01T00:00:02.000Z"}',
          '{"id":3,"name":"cid","dateTime":"2026-01-01T00:00:12.000Z"}',
        },
        auction = {
          '{"seller":1,"dateTime":"2026-01-01T00:00:03.000Z"}',
          '{"seller":1,"dateTime":"2026-01-01T00:00:04.000Z"}',
          '{"seller":2,"dateTime":"2026-01-01T00:00:11.000Z"}',
          '{"seller":3,"dateTime":"2026-01-01T00:00:15.000Z"}',
        },
      },
      want_records = {
        { id = 1, name = "ann", starttime = "2026-01-01T00:00:00.000Z" },
        { id = 3, name = "cid", starttime = "2026-01-01T00:00:10.000Z" },
      },
      late = 0,
    },
  },
}
