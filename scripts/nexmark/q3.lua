-- Nexmark q3, local item suggestion: the persons in Oregon, Idaho or
-- California who sell an item of category 10, with the auction's id (the
-- SQL: an inner join of auction and person on A.seller = P.id with no
-- window). A regular join: both sides stay in keyed state for ever, since
-- a person registered at any time meets every later auction of theirs and
-- an auction may come before its seller registers. Only the records the
-- filters keep are stored, with only the fields eddy.json parses: each
-- person of the three states (about half) and each auction of category
-- 10 (a fifth), about 250 bytes each, for the life of the pipeline.
--
--   eddy run scripts/nexmark/q3.lua --source person=dir:nexmark/person,auction=dir:nexmark/auction --sink file:q3.jsonl --until-idle

return {
  name = "nexmark_q3",
  sources = {
    person = {
      uri = "gen:nexmark?stream=person&count=2000",
      parse = eddy.json{ id = "integer", name = "string", city = "string", state = "string", dateTime = "string" },
      filter = eddy.is_in("state", { "OR", "ID", "CA" }),
      event_time = "dateTime",
    },
    auction = {
      uri = "gen:nexmark?stream=auction&count=6000",
      parse = eddy.json{ id = "integer", seller = "integer", category = "integer", dateTime = "string" },
      filter = eddy.eq("category", 10),
      event_time = "dateTime",
    },
  },
  join = eddy.join{
    left = "person", right = "auction", on = { "id", "seller" }, retention = "forever",
    select = { "person.name", "person.city", "person.state", "auction.id" },
  },
  tests = {
    {
      -- By hand: ann (OR) sells 10 and 13 in category 10 (13 an hour
      -- later; 12 is category 11); bob is in WA; cid (CA) registers after
      -- his auction 14; seller 9 never registers.
      name = "sellers of category 10 in OR, ID and CA",
      input = {
        person = {
          '{"id":1,"name":"ann","city":"Bend","state":"OR","dateTime":"2024-01-01T00:00:01.000Z"}',
          '{"id":2,"name":"bob","city":"Kent","state":"WA","dateTime":"2024-01-01T00:00:02.000Z"}',
          '{"id":3,"name":"cid","city":"Yreka","state":"CA","dateTime":"2024-01-01T00:00:09.000Z"}',
        },
        auction = {
          '{"id":10,"seller":1,"category":10,"dateTime":"2024-01-01T00:00:03.000Z"}',
          '{"id":11,"seller":2,"category":10,"dateTime":"2024-01-01T00:00:04.000Z"}',
          '{"id":12,"seller":1,"category":11,"dateTime":"2024-01-01T00:00:05.000Z"}',
          '{"id":14,"seller":3,"category":10,"dateTime":"2024-01-01T00:00:06.000Z"}',
          '{"id":15,"seller":9,"category":10,"dateTime":"2024-01-01T00:00:07.000Z"}',
          '{"id":13,"seller":1,"category":10,"dateTime":"2024-01-01T01:00:00.000Z"}',
        },
      },
      want_records = {
        { name = "ann", city = "Bend", state = "OR", id = 10 },
        { name = "cid", city = "Yreka", state = "CA", id = 14 },
        { name = "ann", city = "Bend", state = "OR", id = 13 },
      },
      late = 0,
    },
  },
}
