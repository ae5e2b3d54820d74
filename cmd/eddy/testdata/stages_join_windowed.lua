-- A windowed join's aggregate feeding a windowed stage and a last one:
-- per person and 2 s window, the auctions they opened in it (the person
-- registered in the same window); per 6 s window and that count, how many
-- persons had it; per 6 s window, the counts seen, the persons in all and
-- the largest count.
return {
  sources = {
    person = { parse = eddy.json { id = "integer", dateTime = "string" }, event_time = "dateTime" },
    auction = { parse = eddy.json { seller = "integer", dateTime = "string" }, event_time = "dateTime" },
  },
  join = eddy.join {
    left = "person", right = "auction", on = { "id", "seller" }, window = eddy.tumbling("2s"),
    select = { "person.id", "window_start", "window_end" },
  },
  watermark = { out_of_order = "0s" },
  stages = {
    { key = "id", aggregate = { auctions = eddy.count() } },
    { key = "auctions", window = eddy.tumbling("6s"), aggregate = { persons = eddy.count() } },
    {
      key = "window_start",
      aggregate = { counts = eddy.count(), persons = eddy.sum("persons"), most = eddy.max("auctions") },
      order_by = { "window_start" },
      emit = "final",
    },
  },
}
