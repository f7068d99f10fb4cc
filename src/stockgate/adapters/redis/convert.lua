-- Sell a reservation's units: move them from held (or, for a late payment, from available)
-- to sold, all lines or none. Keyed by reservation id, so a second call is a no-op.
-- KEYS[1+4(i-1)..]  per product i: stock hash, holds hash, buyers hash, sales hash
-- ARGV              reservation_id, mode, customer_id, channel, then per product i: quantity
--                   mode 'hold': convert the live hold only (a released or expired hold is
--                   refused); 'take': the hold, else take the units from available (a late
--                   payment; refused when not enough is left); 'force': as 'take', even below
--                   zero (the repair of a sale PostgreSQL committed and the gate never saw).
-- Returns 1 sold now, 0 sold already (nothing changed), -1 refused (nothing changed),
--         -2 a product is not loaded.
local reservation_id = ARGV[1]
local mode = ARGV[2]
local customer_id = ARGV[3]
local products = #KEYS / 4

local from_hold = {}
local done = 0
for i = 1, products do
  local base = 1 + (i - 1) * 4
  local quantity = tonumber(ARGV[4 + i])
  if redis.call('HEXISTS', KEYS[base + 3], reservation_id) == 1 then
    done = done + 1
    from_hold[i] = 'sold'
  elseif redis.call('HEXISTS', KEYS[base + 1], reservation_id) == 1 then
    from_hold[i] = 'hold'
  else
    local available = redis.call('HGET', KEYS[base], 'available')
    if not available then
      return -2
    end
    if mode == 'hold' or (mode == 'take' and tonumber(available) < quantity) then
      return -1
    end
    from_hold[i] = 'available'
  end
end
if done == products then
  return 0
end

for i = 1, products do
  local base = 1 + (i - 1) * 4
  local quantity = tonumber(ARGV[4 + i])
  if from_hold[i] == 'hold' then
    local record = redis.call('HGET', KEYS[base + 1], reservation_id)
    local held = tonumber(string.match(record, '^%S+ (%d+)'))
    redis.call('HDEL', KEYS[base + 1], reservation_id)
    -- The units sold are the hold's; the buyer's count (held + bought) does not change.
    redis.call('HSET', KEYS[base + 3], reservation_id, held)
    redis.call('HINCRBY', KEYS[base], 'sold', held)
  elseif from_hold[i] == 'available' then
    redis.call('HINCRBY', KEYS[base], 'available', -quantity)
    redis.call('HSET', KEYS[base + 3], reservation_id, quantity)
    redis.call('HINCRBY', KEYS[base], 'sold', quantity)
    redis.call('HINCRBY', KEYS[base + 2], customer_id, quantity)
  end
end
return 1
