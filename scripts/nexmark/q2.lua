-- Nexmark q2, selection: the auction and price of the bids on every 123rd
-- auction (the SQL: SELECT auction, price FROM bid WHERE
-- MOD(auction, 123) = 0).
--
--   eddy run scripts/nexmark/q2.lua --source dir:nexmark/bid --records file:q2.jsonl --until-idle
return {
  name = "nexmark_q2",
  source = "gen:nexmark?stream=bid&count=100000",
  parse = eddy.json { auction = "integer", price = "integer" },
  filter = function(b) return b.auction % 123 == 0 end,
  sinks = { records = "stdout" },
  tests = {
    {
      name = "auctions divisible by 123",
      input = {
        '{"auction":1107,"bidder":1001,"price":9490,"dateTime":"2024-01-01T00:00:00.000Z"}',
        '{"auction":1108,"bidder":1001,"price":10,"dateTime":"2024-01-01T00:00:00.000Z"}',
        '{"auction":1230,"bidder":1001,"price":7,"dateTime":"2024-01-01T00:00:00.000Z"}',
      },
      want_records = { { auction = 1107, price = 9490 }, { auction = 1230, price = 7 } },
    },
  },
}
