-- Apply a committed restock to the gate once.
-- KEYS    stock hash
-- ARGV    quantity, version (the restock's ledger entry id), channel, product_id
-- Returns 1 applied, 0 already counted (version not newer), -1 product not loaded
--         (nothing to do: loading reads the restock from PostgreSQL).
local stock_key = KEYS[1]
local quantity = tonumber(ARGV[1])
local version = tonumber(ARGV[2])
local channel = ARGV[3]
local product_id = ARGV[4]

local current = redis.call('HMGET', stock_key, 'available', 'version')
if not current[1] then
  return -1
end
if tonumber(current[2] or '0') >= version then
  return 0
end
local after = redis.call('HINCRBY', stock_key, 'available', quantity)
redis.call('HSET', stock_key, 'version', version)
if after > 0 and after - quantity <= 0 then
  redis.call('PUBLISH', channel, product_id)
end
return 1
