-- Three stages, each windowed but the last: bids per auction in 10 s
-- windows; per auction and minute, the busiest 10 s, how many had bids and
-- the bids in all; per minute, the auctions, the most bids one had, and
-- the sum of the peaks.
return {
  parse = eddy.json { auction = "integer", time = "number" },
  event_time = "time",
  watermark = { out_of_order = "1s" },
  stages = {
    { key = "auction", window = eddy.tumbling("10s"), aggregate = { bids = eddy.count() } },
    {
      key = "auction", window = eddy.tumbling("1m"),
      aggregate = { peak = eddy.max("bids"), active = eddy.count(), total = eddy.sum("bids") },
    },
    {
      key = { "window_start", "window_end" },
      aggregate = { auctions = eddy.count(), hottest = eddy.max("total"), peaks = eddy.sum("peak") },
      columns = { "auctions", "hottest", "peaks" },
      order_by = { "window_start" },
      emit = "final",
    },
  },
}
