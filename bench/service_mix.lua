-- The request mix of bench/service.py, for wrk: wrk -s bench/service_mix.lua URL -- ARGS
-- ARGS: kind (cat|report) keys zipf_s write_ratio owners cats_per_owner seed
--   kind=cat:    GET /cat/{id}, id Zipf-distributed over 1..keys (id 1 the hottest);
--                writes POST /cat/{id} over the same distribution.
--   kind=report: GET /report/{owner}, owner Zipf-distributed over 1..owners;
--                writes POST /cat/{id} to a random cat of an owner drawn the same way.
-- A share write_ratio of the requests are writes. done() prints one line "WRK_JSON {...}".

local kind, write_ratio, per_owner
local cdf = {}
local counter = 0

function setup(thread)
   thread:set("thread_index", counter)
   counter = counter + 1
end

local function build_cdf(n, s)
   local t, total = {}, 0
   for i = 1, n do
      total = total + i ^ (-s)
      t[i] = total
   end
   for i = 1, n do
      t[i] = t[i] / total
   end
   return t
end

local function zipf()
   local u = math.random()
   local lo, hi = 1, #cdf
   while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
   end
   return lo
end

function init(args)
   kind = args[1]
   local keys, s = tonumber(args[2]), tonumber(args[3])
   write_ratio = tonumber(args[4])
   local owners = tonumber(args[5])
   per_owner = tonumber(args[6])
   math.randomseed(tonumber(args[7]) + 7919 * (thread_index or 0))
   if kind == "cat" then cdf = build_cdf(keys, s) else cdf = build_cdf(owners, s) end
end

local write_headers = {["Content-Type"] = "application/json"}

function request()
   if math.random() < write_ratio then
      local id
      if kind == "cat" then
         id = zipf()
      else
         id = (zipf() - 1) * per_owner + math.random(per_owner)
      end
      return wrk.format("POST", "/cat/" .. id, write_headers, "{}")
   end
   if kind == "cat" then
      return wrk.format("GET", "/cat/" .. zipf())
   end
   return wrk.format("GET", "/report/" .. zipf())
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, "p50": %d, "p90": %d, '
      .. '"p99": %d, "p999": %d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency.max, latency:percentile(50),
      latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
