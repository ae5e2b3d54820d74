-- Three windowed stages: bids per auction in 10 s windows; per auction and
-- minute, the busiest 10 s, how many had bids and the bids in all; per two
-- minutes and that number of busy 10 s, the auctions and their peaks.
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
    { key = "active", window = eddy.tumbling("2m"), aggregate = { auctions = eddy.count(), peaks = eddy.sum("peak") } },
  },
}
