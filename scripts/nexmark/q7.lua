-- Nexmark q7, highest bid: per 10-second tumbling window, the bids with
-- the window's highest price (the SQL joins the bids with MAX(price) per
-- TUMBLE(dateTime, 10s)).
--
-- Written as one stage: one global group per window whose Lua aggregate
-- keeps the highest price and its bids, so all of it runs on one actor and
-- every bid goes through Lua. The SQL also joins a bid dated exactly at a
-- window's end (the next window's first millisecond) with the same price
-- to the window it ends (BETWEEN is inclusive); this script doesn't, and
-- the test harness fails on data where that happens.
--
--   eddy run scripts/nexmark/q7.lua --source dir:nexmark/bid --sink file:q7.jsonl --until-idle

local function copy(b)
  return { auction = b.auction, bidder = b.bidder, price = b.price, dateTime = b.dateTime, extra = b.extra }
end

local highest = {
  init = function() return { price = -1, bids = {} } end,
  add = function(acc, b)
    if b.price > acc.price then
      acc.price, acc.bids = b.price, { copy(b) }
    elseif b.price == acc.price then
      acc.bids[#acc.bids + 1] = copy(b)
    end
    return acc
  end,
  merge = function(a, b)
    if b.price > a.price then return b end
    if b.price == a.price then
      for _, x in ipairs(b.bids) do a.bids[#a.bids + 1] = x end
    end
    return a
  end,
  result = function(acc) return acc.bids end,
}

return {
  name = "nexmark_q7",
  source = "gen:nexmark?stream=bid&count=100000",
  parse = eddy.json { auction = "integer", bidder = "integer", price = "integer", dateTime = "string", extra = "string" },
  event_time = "dateTime",
  window = eddy.tumbling("10s"),
  aggregate = { bids = highest },
  emit = "final",
  tests = {
    {
      name = "the bids with the highest price of each window",
      input = {
        '{"auction":1,"bidder":5,"price":5,"dateTime":"2024-01-01T00:00:01.000Z","extra":""}',
        '{"auction":2,"bidder":5,"price":9,"dateTime":"2024-01-01T00:00:02.000Z","extra":"a"}',
        '{"auction":3,"bidder":6,"price":9,"dateTime":"2024-01-01T00:00:07.000Z","extra":"b"}',
        '{"auction":4,"bidder":6,"price":4,"dateTime":"2024-01-01T00:00:10.000Z","extra":"c"}',
      },
      want = {
        { window_start = "2024-01-01T00:00:00.000Z", window_end = "2024-01-01T00:00:10.000Z", bids = {
          { auction = 2, bidder = 5, price = 9, dateTime = "2024-01-01T00:00:02.000Z", extra = "a" },
          { auction = 3, bidder = 6, price = 9, dateTime = "2024-01-01T00:00:07.000Z", extra = "b" },
        } },
        { window_start = "2024-01-01T00:00:10.000Z", window_end = "2024-01-01T00:00:20.000Z", bids = {
          { auction = 4, bidder = 6, price = 4, dateTime = "2024-01-01T00:00:10.000Z", extra = "c" },
        } },
      },
    },
  },
}
