-- Build one product's gate from PostgreSQL's numbers, unless it exists already.
-- KEYS    stock hash, holds hash, buyers hash, sales hash
-- ARGV    available, limit (0: none), version, hold_count,
--         then hold_count x (reservation_id, customer_id, quantity, taken_ms),
--         then sale_count, then sale_count x (reservation_id, quantity) (the sold units),
--         then pairs (customer_id, units bought) for per-customer limits
-- Returns 1 when built, 0 when the product was loaded already (nothing changed).
local stock_key = KEYS[1]
local holds_key = KEYS[2]
local buyers_key = KEYS[3]
local sales_key = KEYS[4]
local available = ARGV[1]
local limit = ARGV[2]
local version = ARGV[3]
local hold_count = tonumber(ARGV[4])

if redis.call('EXISTS', stock_key) == 1 then
  return 0
end
redis.call('DEL', holds_key, buyers_key, sales_key)
for i = 0, hold_count - 1 do
  local at = 5 + i * 4
  local customer_id = ARGV[at + 1]
  redis.call('HSET', holds_key, ARGV[at], customer_id .. ' ' .. ARGV[at + 2] .. ' ' .. ARGV[at + 3])
  redis.call('HINCRBY', buyers_key, customer_id, tonumber(ARGV[at + 2]))
end
local sales_at = 5 + hold_count * 4
local sale_count = tonumber(ARGV[sales_at])
local sold = 0
for i = 0, sale_count - 1 do
  local at = sales_at + 1 + i * 2
  redis.call('HSET', sales_key, ARGV[at], ARGV[at + 1])
  sold = sold + tonumber(ARGV[at + 1])
end
for at = sales_at + 1 + sale_count * 2, #ARGV, 2 do
  redis.call('HINCRBY', buyers_key, ARGV[at], tonumber(ARGV[at + 1]))
end
redis.call('HSET', stock_key, 'available', available, 'limit', limit, 'version', version,
  'sold', sold)
return 1
