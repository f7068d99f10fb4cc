-- Put back a hold that PostgreSQL has and the gate lost, if stock allows.
-- KEYS    stock hash, holds hash, buyers hash
-- ARGV    reservation_id, customer_id, quantity, taken_ms
-- Returns 1 when the hold is in the gate now (restored or already there), 0 when there is
-- not enough available or the product is not loaded.
local stock_key = KEYS[1]
local holds_key = KEYS[2]
local buyers_key = KEYS[3]
local reservation_id = ARGV[1]
local customer_id = ARGV[2]
local quantity = tonumber(ARGV[3])
local taken_ms = ARGV[4]

if redis.call('HEXISTS', holds_key, reservation_id) == 1 then
  return 1
end
local available = redis.call('HGET', stock_key, 'available')
if not available or tonumber(available) < quantity then
  return 0
end
redis.call('HINCRBY', stock_key, 'available', -quantity)
redis.call('HSET', holds_key, reservation_id, customer_id .. ' ' .. quantity .. ' ' .. taken_ms)
redis.call('HINCRBY', buyers_key, customer_id, quantity)
return 1
