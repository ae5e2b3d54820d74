-- Nexmark q5, hot items: per 10-second window every 2 seconds, the
-- auctions with the most bids (the SQL counts bids per auction and HOP
-- window, takes the largest count per window, and joins the counts back on
-- AuctionBids.num >= MaxBids.maxn: on a tie, every auction that has it).
--
-- Two stages: bids per auction and window, then per window the auctions
-- whose count is the window's largest. The second stage's aggregate is in
-- Lua because no built-in one keeps ties: eddy.top(1, "auction", "num")
-- gives one auction where the SQL gives all that share the largest count,
-- and stages can't join a stage's rows back with the next stage's max. It
-- sees one row per auction and window, not every bid.
--
--   eddy run scripts/nexmark/q5.lua --source dir:nexmark/bid --sink file:q5.jsonl --until-idle

-- hottest keeps the largest count and the auctions that have it.
local hottest = {
  init = function() return { num = 0, auctions = {} } end,
  add = function(acc, r)
    if r.num > acc.num then
      acc.num, acc.auctions = r.num, { r.auction }
    elseif r.num == acc.num then
      acc.auctions[#acc.auctions + 1] = r.auction
    end
    return acc
  end,
  merge = function(a, b)
    if b.num > a.num then return b end
    if b.num == a.num then
      for _, x in ipairs(b.auctions) do a.auctions[#a.auctions + 1] = x end
    end
    return a
  end,
  result = function(acc)
    table.sort(acc.auctions)
    return acc.auctions
  end,
}

return {
  name = "nexmark_q5",
  source = "gen:nexmark?stream=bid&count=100000",
  parse = eddy.json { auction = "integer", dateTime = "string" },
  event_time = "dateTime",
  stages = {
    { key = "auction", window = eddy.hopping("10s", "2s"), aggregate = { num = eddy.count() } },
    {
      key = { "window_start", "window_end" },
      aggregate = { num = eddy.max("num"), auctions = hottest },
      emit = "final",
    },
  },
  tests = {
    {
      -- By hand: auction 1 has bids at 1s, 3s and 9s, auction 2 at 2s and
      -- 8s, auction 3 at 9s. Window [0s, 10s) has 3, 2 and 1: auction 1.
      -- [2s, 12s): 1 has 2 (3s, 9s), 2 has 2 (2s, 8s): both. From [4s, 14s)
      -- on, each has one (9s, 8s, 9s): all three.
      name = "the auctions with the most bids, all of them on a tie",
      input = {
        '{"auction":1,"dateTime":"2024-01-01T00:00:01.000Z"}',
        '{"auction":2,"dateTime":"2024-01-01T00:00:02.000Z"}',
        '{"auction":1,"dateTime":"2024-01-01T00:00:03.000Z"}',
        '{"auction":2,"dateTime":"2024-01-01T00:00:08.000Z"}',
        '{"auction":1,"dateTime":"2024-01-01T00:00:09.000Z"}',
        '{"auction":3,"dateTime":"2024-01-01T00:00:09.000Z"}',
      },
      want = {
        { window_start = "2023-12-31T23:59:52.000Z", window_end = "2024-01-01T00:00:02.000Z", num = 1, auctions = { 1 } },
        { window_start = "2023-12-31T23:59:54.000Z", window_end = "2024-01-01T00:00:04.000Z", num = 2, auctions = { 1 } },
        { window_start = "2023-12-31T23:59:56.000Z", window_end = "2024-01-01T00:00:06.000Z", num = 2, auctions = { 1 } },
        { window_start = "2023-12-31T23:59:58.000Z", window_end = "2024-01-01T00:00:08.000Z", num = 2, auctions = { 1 } },
        { window_start = "2024-01-01T00:00:00.000Z", window_end = "2024-01-01T00:00:10.000Z", num = 3, auctions = { 1 } },
        { window_start = "2024-01-01T00:00:02.000Z", window_end = "2024-01-01T00:00:12.000Z", num = 2, auctions = { 1, 2 } },
        { window_start = "2024-01-01T00:00:04.000Z", window_end = "2024-01-01T00:00:14.000Z", num = 1, auctions = { 1, 2, 3 } },
        { window_start = "2024-01-01T00:00:06.000Z", window_end = "2024-01-01T00:00:16.000Z", num = 1, auctions = { 1, 2, 3 } },
        { window_start = "2024-01-01T00:00:08.000Z", window_end = "2024-01-01T00:00:18.000Z", num = 1, auctions = { 1, 2, 3 } },
      },
    },
  },
}
