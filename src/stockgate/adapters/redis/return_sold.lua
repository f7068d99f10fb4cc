-- Put a sale's units back on sale (a refund returned them). Keyed by reservation id, so a
-- second call is a no-op.
-- KEYS[1+4(i-1)..]  per product i: stock hash, holds hash, buyers hash, sales hash
-- ARGV              reservation_id, customer_id, channel, product_id_1..product_id_n
-- Returns the number of units returned (0 when there was no such sale).
local reservation_id = ARGV[1]
local customer_id = ARGV[2]
local channel = ARGV[3]
local returned = 0

for i = 1, #KEYS / 4 do
  local base = 1 + (i - 1) * 4
  local quantity = redis.call('HGET', KEYS[base + 3], reservation_id)
  if quantity then
    quantity = tonumber(quantity)
    redis.call('HDEL', KEYS[base + 3], reservation_id)
    redis.call('HINCRBY', KEYS[base], 'sold', -quantity)
    local after = redis.call('HINCRBY', KEYS[base], 'available', quantity)
    local left = redis.call('HINCRBY', KEYS[base + 2], customer_id, -quantity)
    if left <= 0 then
      redis.call('HDEL', KEYS[base + 2], customer_id)
    end
    if after > 0 and after - quantity <= 0 then
      redis.call('PUBLISH', channel, ARGV[3 + i])
    end
    returned = returned + quantity
  end
end
return returned
