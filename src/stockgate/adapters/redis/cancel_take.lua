-- Cancel a take whose answer was lost: give its units back if it was applied, and make sure
-- it can never be applied later (a take still queued in Redis is refused by the mark).
-- KEYS[1]           idempotency key (deleted when forget == '1' and it names this reservation)
-- KEYS[2]           the cancel mark of this reservation (under its first product's hash tag)
-- KEYS[3+3(i-1)..]  per product i: stock hash, holds hash, buyers hash
-- ARGV              reservation_id, forget ('1' or '0'), channel, mark_ttl_seconds,
--                   product_id_1..product_id_n
-- Returns the number of units given back (0: the take had not been applied, and now never is).
local idem_key = KEYS[1]
local mark_key = KEYS[2]
local reservation_id = ARGV[1]
local forget = ARGV[2]
local channel = ARGV[3]
local mark_ttl = tonumber(ARGV[4])
local returned = 0

redis.call('SET', mark_key, '1', 'EX', mark_ttl)
for i = 1, (#KEYS - 2) / 3 do
  local base = 3 + (i - 1) * 3
  local record = redis.call('HGET', KEYS[base + 1], reservation_id)
  if record then
    local customer_id, quantity = string.match(record, '^(%S+) (%d+)')
    quantity = tonumber(quantity)
    redis.call('HDEL', KEYS[base + 1], reservation_id)
    local after = redis.call('HINCRBY', KEYS[base], 'available', quantity)
    local left = redis.call('HINCRBY', KEYS[base + 2], customer_id, -quantity)
    if left <= 0 then
      redis.call('HDEL', KEYS[base + 2], customer_id)
    end
    if after > 0 and after - quantity <= 0 then
      redis.call('PUBLISH', channel, ARGV[4 + i])  -- back in stock: nodes drop their sold-out cache
    end
    returned = returned + quantity
  end
end

if forget == '1' then
  local original = redis.call('GET', idem_key)
  if original and string.sub(original, 1, #reservation_id) == reservation_id then
    redis.call('DEL', idem_key)
  end
end
return returned
