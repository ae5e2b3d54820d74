-- Nexmark q4, average price per category: per auction, the highest price
-- of the bids made while it ran (B.dateTime BETWEEN A.dateTime AND
-- A.expires; auctions without one drop out of the inner join), averaged
-- per category.
--
-- An interval join from each auction's time to its expires, then two
-- stages: the highest price per auction, emitted once when the watermark
-- passes its expiry, then the mean of those per category. eddy.avg gives
-- the exact mean; Flink's AVG over BIGINT truncates it.
--
--   eddy run scripts/nexmark/q4.lua --source auction=dir:nexmark/auction,bid=dir:nexmark/bid --sink file:q4.jsonl --until-idle

return {
  name = "nexmark_q4",
  sources = {
    auction = {
      uri = "gen:nexmark?stream=auction&count=6000",
      parse = eddy.json{ id = "integer", category = "integer", dateTime = "string", expires = "string" },
      event_time = "dateTime",
    },
    bid = {
      uri = "gen:nexmark?stream=bid&count=92000",
      parse = eddy.json{ auction = "integer", price = "integer", dateTime = "string" },
      event_time = "dateTime",
    },
  },
  join = eddy.interval_join{
    left = "auction", right = "bid", on = { "id", "auction" }, ends_at = "expires",
    select = { "auction.id", "auction.category", "bid.price" },
  },
  stages = {
    { key = { "id", "category" }, aggregate = { final = eddy.max("price") } },
    { key = "category", aggregate = { avg = eddy.avg("final") }, emit = "final" },
  },
  tests = {
    {
      -- By hand: auctions 1 and 2 of category 10 win 300 (of 300 and 250)
      -- and 251 (its 400 came after it expired): 275.5; auction 3 of
      -- category 11 wins 70; auction 4 has no bid while it ran.
      name = "the average winning price per category",
      input = {
        auction = {
          '{"id":1,"category":10,"dateTime":"2024-01-01T00:00:00.000Z","expires":"2024-01-01T00:00:10.000Z"}',
          '{"id":2,"category":10,"dateTime":"2024-01-01T00:00:00.000Z","expires":"2024-01-01T00:00:10.000Z"}',
          '{"id":3,"category":11,"dateTime":"2024-01-01T00:00:05.000Z","expires":"2024-01-01T00:00:06.000Z"}',
          '{"id":4,"category":12,"dateTime":"2024-01-01T00:00:05.000Z","expires":"2024-01-01T00:00:06.000Z"}',
        },
        bid = {
          '{"auction":1,"price":300,"dateTime":"2024-01-01T00:00:02.000Z"}',
          '{"auction":2,"price":251,"dateTime":"2024-01-01T00:00:03.000Z"}',
          '{"auction":1,"price":250,"dateTime":"2024-01-01T00:00:04.000Z"}',
          '{"auction":3,"price":70,"dateTime":"2024-01-01T00:00:05.000Z"}',
          '{"auction":4,"price":9,"dateTime":"2024-01-01T00:00:07.000Z"}',
          '{"auction":2,"price":400,"dateTime":"2024-01-01T00:00:11.000Z"}',
        },
      },
      want = { { category = 10, avg = 275.5 }, { category = 11, avg = 70 } },
    },
  },
}
