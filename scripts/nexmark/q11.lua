-- Nexmark q11, user sessions: per bidder, the bids of each session (bids
-- at most 10 seconds apart) and its start and end (the SQL: GROUP BY
-- B.bidder, SESSION(B.dateTime, INTERVAL '10' SECOND), with count(*),
-- SESSION_START and SESSION_END). A session ends 10 seconds after its last
-- bid.
--
--   eddy run scripts/nexmark/q11.lua --source dir:nexmark/bid --sink file:q11.jsonl --until-idle
return {
  name = "nexmark_q11",
  source = "gen:nexmark?stream=bid&count=100000",
  parse = eddy.json { bidder = "integer", dateTime = "string" },
  event_time = "dateTime",
  key = "bidder",
  window = eddy.session("10s"),
  aggregate = { bid_count = eddy.count() },
  emit = "final",
  tests = {
    {
      name = "bids 10 seconds apart are one session, 11 seconds apart two",
      input = {
        '{"bidder":7,"dateTime":"2024-01-01T00:00:00.000Z"}',
        '{"bidder":8,"dateTime":"2024-01-01T00:00:03.000Z"}',
        '{"bidder":7,"dateTime":"2024-01-01T00:00:10.000Z"}',
        '{"bidder":7,"dateTime":"2024-01-01T00:00:21.000Z"}',
      },
      want = {
        { bidder = 7, window_start = "2024-01-01T00:00:00.000Z", window_end = "2024-01-01T00:00:20.000Z", bid_count = 2 },
        { bidder = 8, window_start = "2024-01-01T00:00:03.000Z", window_end = "2024-01-01T00:00:13.000Z", bid_count = 1 },
        { bidder = 7, window_start = "2024-01-01T00:00:21.000Z", window_end = "2024-01-01T00:00:31.000Z", bid_count = 1 },
      },
    },
  },
}
