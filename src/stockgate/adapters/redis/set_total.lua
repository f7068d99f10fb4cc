-- Make available + held + sold equal PostgreSQL's stock, and rebuild per-customer counts.
-- `sold` is the gate's own (its sales): the repair finishes or undoes sales first, by
-- reservation, so a sale in flight is never counted twice nor its units handed out again.
-- KEYS    stock hash, holds hash, buyers hash
-- ARGV    stock, version (newest stock ledger id in the snapshot), limit, channel, product_id,
--         then pairs (customer_id, units bought)
-- Returns {1, correction} when applied; {0} when skipped: not loaded, or the gate has
-- already applied a newer restock than the snapshot knew of (the next round will see it).
local stock_key = KEYS[1]
local holds_key = KEYS[2]
local buyers_key = KEYS[3]
local total = tonumber(ARGV[1])
local version = tonumber(ARGV[2])
local limit = ARGV[3]
local channel = ARGV[4]
local product_id = ARGV[5]

local current = redis.call('HMGET', stock_key, 'available', 'version', 'sold')
if not current[1] or tonumber(current[2] or '0') > version then
  return {0}
end
local held = 0
local by_customer = {}
local records = redis.call('HVALS', holds_key)
for _, record in ipairs(records) do
  local customer_id, quantity = string.match(record, '^(%S+) (%d+)')
  held = held + tonumber(quantity)
  by_customer[customer_id] = (by_customer[customer_id] or 0) + tonumber(quantity)
end
for at = 6, #ARGV, 2 do
  by_customer[ARGV[at]] = (by_customer[ARGV[at]] or 0) + tonumber(ARGV[at + 1])
end
redis.call('DEL', buyers_key)
for customer_id, units in pairs(by_customer) do
  redis.call('HSET', buyers_key, customer_id, units)
end

local before = tonumber(current[1])
local correction = total - (before + held + tonumber(current[3] or '0'))
if correction ~= 0 then
  redis.call('HINCRBY', stock_key, 'available', correction)
  if before <= 0 and before + correction > 0 then
    redis.call('PUBLISH', channel, product_id)
  end
end
redis.call('HSET', stock_key, 'version', version, 'limit', limit)
return {1, correction}
