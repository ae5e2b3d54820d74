-- Seed 000: tshark's capture log → source and destination IPs.
--
-- tshark prints one line per packet:
--     1 0.000000 192.168.1.10 → 93.184.216.34 TCP 66 54321 → 443 [SYN] Seq=0
-- number, relative time, source, arrow, destination, protocol, length, info.
-- Kafka Connect's file source wraps each line as {"payload": "..."}; both
-- forms are accepted.
--
--   tshark -i en0 >> /tmp/en0.log &
--   eddy run scripts/tshark_ips.lua --source file:/tmp/en0.log --records file:packets.jsonl

local function is_ip(s)
  if s:match("^%d+%.%d+%.%d+%.%d+$") then
    for octet in s:gmatch("%d+") do
      if tonumber(octet) > 255 then return false end
    end
    return true
  end
  -- IPv6: hex groups and colons, at least two colons
  return s:match("^[%x:]+$") ~= nil and select(2, s:gsub(":", "")) >= 2
end

return {
  name = "tshark_ips",
  source = "gen:tshark?count=10000&seed=3",

  parse = function(line)
    if line:sub(1, 1) == "{" then
      line = json.decode(line).payload or error("JSON line without a payload field")
    end
    local no, t, src, dst, proto, len =
      line:match("^%s*(%d+)%s+([%d%.]+)%s+(%S+)%s+→%s+(%S+)%s+(%S+)%s+(%d+)")
    if not no then
      error("not a tshark packet line")
    end
    if not is_ip(src) or not is_ip(dst) then
      error("no IP addresses: " .. src .. " → " .. dst)
    end
    return { src = src, dst = dst, proto = proto, len = tonumber(len), time = tonumber(t) }
  end,

  key = { "src", "dst" },
  aggregate = {
    packets = eddy.count(),
    bytes = eddy.sum("len"),
  },
  columns = { "packets", "bytes" },
  order_by = { "bytes desc", "src", "dst" },
  emit = "update",
  sinks = { results = "stdout" },

  tests = {
    {
      name = "parses packets and counts packets and bytes per pair",
      input = {
        "    1 0.000000 192.168.1.10 → 93.184.216.34 TCP 66 54321 → 443 [SYN] Seq=0 Win=65535 Len=0",
        "    2 0.010221 93.184.216.34 → 192.168.1.10 TCP 66 443 → 54321 [SYN, ACK] Seq=0 Ack=1",
        "    3 0.010300 192.168.1.10 → 93.184.216.34 TLSv1.2 583 Client Hello",
        '{"schema":{"type":"string"},"payload":"    4 0.2 fe80::1 → ff02::fb MDNS 87 Standard query"}',
      },
      want = {
        { src = "192.168.1.10", dst = "93.184.216.34", packets = 2, bytes = 649 },
        { src = "fe80::1", dst = "ff02::fb", packets = 1, bytes = 87 },
        { src = "93.184.216.34", dst = "192.168.1.10", packets = 1, bytes = 66 },
      },
      want_records = {
        { src = "192.168.1.10", dst = "93.184.216.34", proto = "TCP", len = 66, time = 0 },
        { src = "93.184.216.34", dst = "192.168.1.10", proto = "TCP", len = 66, time = 0.010221 },
        { src = "192.168.1.10", dst = "93.184.216.34", proto = "TLSv1.2", len = 583, time = 0.0103 },
        { src = "fe80::1", dst = "ff02::fb", proto = "MDNS", len = 87, time = 0.2 },
      },
      dead_letters = 0,
    },
    {
      name = "capture banners, ARP and garbage go to dead letters",
      input = {
        "Capturing on 'Wi-Fi: en0'",
        "865",
        "    5 0.5 Apple_12:34:56 → Broadcast ARP 42 Who has 192.168.1.1? Tell 192.168.1.10",
        "    6 0.6 10.0.0.1 →",
        "    7 0.7 10.0.0.1 → 10.0.0.2 UDP 70 5353 → 5353 Len=28",
        '{"payload_missing": true}',
      },
      want = { { src = "10.0.0.1", dst = "10.0.0.2", packets = 1, bytes = 70 } },
      dead_letters = 5,
    },
  },
}
