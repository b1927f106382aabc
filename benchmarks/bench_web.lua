-- wrk script for bench_web.py: request each path of a list once, spread over wrk's threads
-- (thread k of n takes paths k, k+n, k+2n, ...); a thread that has all its answers stops
-- and writes <paths file>.done<k>, and bench_web.py then ends wrk with SIGINT (wrk itself
-- would wait out -d); at the end, one line with the latency percentiles.
-- Usage: wrk -t<n> -c<conns> -d<max> -s bench_web.lua <url> -- <paths file> <n>

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  step = tonumber(args[2])
  nxt = id
  quota = 0
  for _ = id, #paths, step do
    quota = quota + 1
  end
  answered = 0
  marker = args[1] .. ".done" .. id
end

function request()
  local path = paths[nxt] or paths[id] -- past its share (answers still coming): repeat one
  nxt = nxt + step
  return wrk.format("GET", path)
end

function response(status, headers, body)
  answered = answered + 1
  if answered == quota then
    io.open(marker, "w"):close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d errors=%d seconds=%.3f p50_us=%d p95_us=%d p99_us=%d max_us=%d\n",
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
