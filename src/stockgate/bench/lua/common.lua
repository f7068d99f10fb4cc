-- Shared by every scenario (prepended to the scenario's script by the bench).
-- Counts responses by status in each thread (`counts`, `kinds`) and prints one JSON line
-- from done(), which runs in the main Lua state and reads the threads' tables back.
-- Script args (after `--`): none here; scenarios read their own in init(args).

counts = {}   -- status -> responses
kinds = {}    -- "<kind>:<status>" -> responses, for scenarios that send several kinds
local threads = {}

function count(status, kind)
   counts[status] = (counts[status] or 0) + 1
   if kind then
      local key = kind .. ":" .. status
      kinds[key] = (kinds[key] or 0) + 1
   end
end

function header(headers, name)
   return headers[name] or headers[string.lower(name)] or headers[string.upper(name)]
end

function setup(thread)
   table.insert(threads, thread)
end

local function encode(map)
   local parts = {}
   for key, value in pairs(map) do
      table.insert(parts, string.format('"%s":%d', tostring(key), value))
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

local function merge(into, from)
   for key, value in pairs(from or {}) do
      into[key] = (into[key] or 0) + value
   end
end

function done(summary, latency, requests)
   local all_counts, all_kinds = {}, {}
   for _, thread in ipairs(threads) do
      merge(all_counts, thread:get("counts"))
      merge(all_kinds, thread:get("kinds"))
   end
   local e = summary.errors
   io.write(string.format(
      '@@wrk {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},' ..
      '"statuses":%s,"kinds":%s}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean,
      encode(all_counts), encode(all_kinds)))
end
