-- Nexmark q5's shape in two stages: bids per auction in hopping windows,
-- then per window the largest count, how many auctions had bids, and
-- the bids in all (which catches a window counted twice or lost).
return {
  parse = eddy.json { auction = "integer", time = "number" },
  event_time = "time",
  watermark = { out_of_order = "1s" },
  stages = {
    { key = "auction", window = eddy.hopping("10s", "5s"), aggregate = { bids = eddy.count() } },
    {
      key = { "window_start", "window_end" },
      aggregate = { most = eddy.max("bids"), auctions = eddy.count(), bids = eddy.sum("bids") },
      columns = { "most", "auctions", "bids" },
      order_by = { "window_start" },
      emit = "final",
    },
  },
}
