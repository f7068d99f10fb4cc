-- Take every line of a reservation, or none (all-or-nothing), within per-customer limits.
-- KEYS[1]           idempotency key (always passed; used only when idem_ttl > 0)
-- KEYS[2+3(i-1)..]  per line i: the product's stock hash, holds hash, buyers hash
-- KEYS[#KEYS]       the reservation's cancel mark (set by cancel_take.lua)
-- ARGV              reservation_id, customer_id, fingerprint, idem_ttl, now_ms,
--                   idempotency key as the client sent it ('' without one), qty_1..qty_n,
--                   then the server's identity (run id and replication id, appended by the
--                   batcher from INFO on this connection)
-- Returns {1} taken; {0, i, available} sold out; {-1, i, limit, already} limit exceeded;
--         {-2, i} product i not loaded; {-3, i} product i was loaded on another server
--         identity (a restart or failover may have lost writes: rebuild it first);
--         {-4, 1} canceled (its answer was lost and it was canceled before it ran);
--         {2, "reservation_id fingerprint"} idempotent repeat.
local idem_key = KEYS[1]
local reservation_id = ARGV[1]
local customer_id = ARGV[2]
local fingerprint = ARGV[3]
local idem_ttl = tonumber(ARGV[4])
local now_ms = ARGV[5]
local lines = #ARGV - 7
local server = ARGV[#ARGV]
-- A hold's record: "customer quantity taken_ms [key]"; the key lets whoever voids the hold
-- (the reconciler) forget it too, so a retry of the request is not stuck on a dead original.
local record_tail = ' ' .. now_ms
if idem_ttl > 0 then
  record_tail = record_tail .. ' ' .. ARGV[6]
end

-- A take whose answer was lost is canceled; if it is still queued, it must not apply now.
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then
  return {-4, 1}
end

if idem_ttl > 0 then
  local original = redis.call('GET', idem_key)
  if original then
    return {2, original}
  end
end

-- Check every line before touching any: nothing is taken unless all of it can be.
for i = 1, lines do
  local stock_key = KEYS[2 + (i - 1) * 3]
  local buyers_key = KEYS[4 + (i - 1) * 3]
  local quantity = tonumber(ARGV[6 + i])
  local stock = redis.call('HMGET', stock_key, 'available', 'limit', 'server')
  if not stock[1] then
    return {-2, i}
  end
  if stock[3] ~= server then
    return {-3, i}
  end
  local available = tonumber(stock[1])
  if available < quantity then
    return {0, i, available}
  end
  local limit = tonumber(stock[2] or '0')
  if limit > 0 then
    local already = tonumber(redis.call('HGET', buyers_key, customer_id) or '0')
    if already + quantity > limit then
      return {-1, i, limit, already}
    end
  end
end

for i = 1, lines do
  local base = 2 + (i - 1) * 3
  local quantity = tonumber(ARGV[6 + i])
  redis.call('HINCRBY', KEYS[base], 'available', -quantity)
  redis.call('HSET', KEYS[base + 1], reservation_id, customer_id .. ' ' .. quantity .. record_tail)
  redis.call('HINCRBY', KEYS[base + 2], customer_id, quantity)
end
if idem_ttl > 0 then
  redis.call('SET', idem_key, reservation_id .. ' ' .. fingerprint, 'EX', idem_ttl)
end
return {1}
