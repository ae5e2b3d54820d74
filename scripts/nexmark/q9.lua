-- Nexmark q9, winning bids: each auction with its winning bid, the
-- highest of the bids made while it ran (B.dateTime BETWEEN A.dateTime
-- AND A.expires), the earliest of those on a tie in price (the SQL's
-- ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime
-- ASC) = 1), and the first of those in the bids' order on a tie in both.
--
-- An interval join from each auction's time to its expires, and an
-- aggregate over the joined rows per auction (keyed by the auction's
-- columns: the join key first). Each auction's row comes out once, when
-- the watermark passes its expiry; window_start and window_end are its
-- dateTime and expires. The winner is a small Lua aggregate: no built-in
-- one orders by price, then time.
--
--   eddy run scripts/nexmark/q9.lua --source auction=dir:nexmark/auction,bid=dir:nexmark/bid --sink file:q9.jsonl --until-idle

-- winner keeps the best bid so far: the highest price, then the earliest,
-- then the first seen.
local function better(b, a)
  return b.price > a.price or (b.price == a.price and b.bid_dateTime < a.bid_dateTime)
end

local winner = {
  init = function() return {} end,
  add = function(acc, r)
    if acc.price == nil or better(r, acc) then
      return { auction = r.auction, bidder = r.bidder, price = r.price, bid_dateTime = r.bid_dateTime, bid_extra = r.bid_extra }
    end
    return acc
  end,
  merge = function(a, b)
    if a.price == nil or (b.price ~= nil and better(b, a)) then return b end
    return a
  end,
  result = function(acc) return acc end,
}

local auction_columns = { "id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires", "seller", "category", "extra" }

local select = {}
for _, c in ipairs(auction_columns) do select[#select + 1] = "auction." .. c end
for _, c in ipairs({ "bid.auction", "bid.bidder", "bid.price", "bid.dateTime as bid_dateTime", "bid.extra as bid_extra" }) do
  select[#select + 1] = c
end

return {
  name = "nexmark_q9",
  sources = {
    auction = {
      uri = "gen:nexmark?stream=auction&count=6000",
      parse = eddy.json{ id = "integer", itemName = "string", description = "string", initialBid = "integer", reserve = "integer",
                         dateTime = "string", expires = "string", seller = "integer", category = "integer", extra = "string" },
      event_time = "dateTime",
    },
    bid = {
      uri = "gen:nexmark?stream=bid&count=92000",
      parse = eddy.json{ auction = "integer", bidder = "integer", price = "integer", dateTime = "string", extra = "string" },
      event_time = "dateTime",
    },
  },
  join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, ends_at = "expires", select = select },
  key = auction_columns,
  aggregate = { winner = winner },
  order_by = { "window_end", "id" },
  tests = {
    {
      -- By hand: auction 1 runs 0s..10s: 300 at 2s and at 4s (the
      -- earlier wins), 250 at 3s, 400 at 11s (after it). Auction 2 runs
      -- 1s..3s: 90 at 0.5s (before it), 80 at 3s (its last instant).
      -- Auction 3 gets no bid. Rows come out as auctions expire: by
      -- window_end.
      name = "the winning bid of each auction",
      input = {
        auction = {
          '{"id":1,"itemName":"a","description":"d","initialBid":1,"reserve":2,"dateTime":"2024-01-01T00:00:00.000Z","expires":"2024-01-01T00:00:10.000Z","seller":7,"category":10,"extra":""}',
          '{"id":2,"itemName":"b","description":"d","initialBid":1,"reserve":2,"dateTime":"2024-01-01T00:00:01.000Z","expires":"2024-01-01T00:00:03.000Z","seller":7,"category":11,"extra":""}',
          '{"id":3,"itemName":"c","description":"d","initialBid":1,"reserve":2,"dateTime":"2024-01-01T00:00:01.000Z","expires":"2024-01-01T00:00:02.000Z","seller":8,"category":11,"extra":""}',
        },
        bid = {
          '{"auction":2,"bidder":5,"price":90,"dateTime":"2024-01-01T00:00:00.500Z","extra":""}',
          '{"auction":1,"bidder":5,"price":300,"dateTime":"2024-01-01T00:00:02.000Z","extra":"first"}',
          '{"auction":1,"bidder":6,"price":250,"dateTime":"2024-01-01T00:00:03.000Z","extra":""}',
          '{"auction":2,"bidder":6,"price":80,"dateTime":"2024-01-01T00:00:03.000Z","extra":""}',
          '{"auction":1,"bidder":6,"price":300,"dateTime":"2024-01-01T00:00:04.000Z","extra":"later"}',
          '{"auction":1,"bidder":6,"price":400,"dateTime":"2024-01-01T00:00:11.000Z","extra":""}',
        },
      },
      want = {
        { id = 2, itemName = "b", description = "d", initialBid = 1, reserve = 2, dateTime = "2024-01-01T00:00:01.000Z",
          expires = "2024-01-01T00:00:03.000Z", seller = 7, category = 11, extra = "",
          window_start = "2024-01-01T00:00:01.000Z", window_end = "2024-01-01T00:00:03.000Z",
          winner = { auction = 2, bidder = 6, price = 80, bid_dateTime = "2024-01-01T00:00:03.000Z", bid_extra = "" } },
        { id = 1, itemName = "a", description = "d", initialBid = 1, reserve = 2, dateTime = "2024-01-01T00:00:00.000Z",
          expires = "2024-01-01T00:00:10.000Z", seller = 7, category = 10, extra = "",
          window_start = "2024-01-01T00:00:00.000Z", window_end = "2024-01-01T00:00:10.000Z",
          winner = { auction = 1, bidder = 5, price = 300, bid_dateTime = "2024-01-01T00:00:02.000Z", bid_extra = "first" } },
      },
      late = 0,
    },
  },
}
