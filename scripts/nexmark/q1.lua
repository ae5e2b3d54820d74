-- Nexmark q1, currency conversion: every bid with its price in euros (the
-- SQL: SELECT auction, bidder, 0.908 * price as price, dateTime, extra
-- FROM bid). A declarative map, evaluated in Go: no Lua per record.
--
-- The SQL's price is a DECIMAL(23, 3); eddy's is a float64, whose nearest
-- thousandth is the exact decimal for any price below 2^53 / 1000.
--
--   eddy run scripts/nexmark/q1.lua --source dir:nexmark/bid --records file:q1.jsonl --until-idle
return {
  name = "nexmark_q1",
  source = "gen:nexmark?stream=bid&count=100000",
  parse = eddy.json { auction = "integer", bidder = "integer", price = "integer", dateTime = "string", extra = "string" },
  map = eddy.map { "auction", "bidder", price = eddy.mul("price", 0.908), "dateTime", "extra" },
  sinks = { records = "stdout" },
  tests = {
    {
      name = "prices in euros",
      input = {
        '{"auction":1000,"bidder":1001,"price":1000,"channel":"Google","url":"https://www.nexmark.com/a/b/c/item.htm?query=1","dateTime":"2024-01-01T00:00:00.000Z","extra":"xyz"}',
        '{"auction":1001,"bidder":1002,"price":250,"channel":"Google","url":"https://www.nexmark.com/a/b/c/item.htm?query=1","dateTime":"2024-01-01T00:00:01.000Z","extra":""}',
      },
      want_records = {
        { auction = 1000, bidder = 1001, price = 908, dateTime = "2024-01-01T00:00:00.000Z", extra = "xyz" },
        { auction = 1001, bidder = 1002, price = 227, dateTime = "2024-01-01T00:00:01.000Z", extra = "" },
      },
    },
  },
}
