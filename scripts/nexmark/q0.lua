-- Nexmark q0, pass-through: every bid's auction, bidder, price, dateTime
-- and extra, as they come (the SQL: SELECT auction, bidder, price,
-- dateTime, extra FROM bid). It measures the cost of reading, parsing and
-- writing records with nothing else to do.
--
--   eddy gen nexmark --count 1000000 --out nexmark/
--   eddy run scripts/nexmark/q0.lua --source dir:nexmark/bid --records file:q0.jsonl --until-idle
return {
  name = "nexmark_q0",
  source = "gen:nexmark?stream=bid&count=100000",
  parse = eddy.json { auction = "integer", bidder = "integer", price = "integer", dateTime = "string", extra = "string" },
  sinks = { records = "stdout" },
  tests = {
    {
      name = "the five columns of every bid",
      input = {
        '{"auction":1000,"bidder":1001,"price":9490,"channel":"Google","url":"https://www.nexmark.com/a/b/c/item.htm?query=1","dateTime":"2024-01-01T00:00:00.000Z","extra":"xyz"}',
      },
      want_records = {
        { auction = 1000, bidder = 1001, price = 9490, dateTime = "2024-01-01T00:00:00.000Z", extra = "xyz" },
      },
    },
  },
}
