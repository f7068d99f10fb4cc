-- Give back a reservation's units. Keyed by reservation id, so a second call is a no-op.
-- KEYS[1]           idempotency key (deleted when forget == '1' and it names this reservation)
-- KEYS[2+3(i-1)..]  per product i: stock hash, holds hash, buyers hash
-- ARGV              reservation_id, forget ('1' or '0'), channel, product_id_1..product_id_n
-- Returns the number of units given back (0 when they were given back already).
local idem_key = KEYS[1]
local reservation_id = ARGV[1]
local forget = ARGV[2]
local channel = ARGV[3]
local returned = 0

for i = 1, (#KEYS - 1) / 3 do
  local base = 2 + (i - 1) * 3
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
      redis.call('PUBLISH', channel, ARGV[3 + i])  -- back in stock: nodes drop their sold-out cache
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
