-- flash-sale: many buyers, several small products, multi-line reservations; a share of the
-- reservations is released with DELETE as the next request, the rest is abandoned to expire.
-- Args: tokens file, comma-separated product ids, share released (0..1), random seed.
-- The buyer of a reservation is found again through the X-Request-ID the API echoes
-- ("b-<buyer>" on reservations, "d-<buyer>" on releases); without it nothing is released.

local tokens, products = {}, {}
local n, i = 0, 0
local release_share = 0.5
local pending, head, tail = {}, 1, 0

function init(args)
   for token in io.lines(args[1]) do
      n = n + 1
      tokens[n] = token
   end
   for id in string.gmatch(args[2], "%d+") do
      table.insert(products, tonumber(id))
   end
   release_share = tonumber(args[3])
   math.randomseed(tonumber(args[4]))
end

local function reserve()
   i = i % n + 1
   local lines, chosen = {}, {}
   for _ = 1, math.random(1, 3) do
      local product = products[math.random(1, #products)]
      if not chosen[product] then
         chosen[product] = true
         table.insert(lines, string.format('{"product_id":%d,"quantity":%d}',
                                           product, math.random(1, 2)))
      end
   end
   return wrk.format("POST", "/api/v1/reservations", {
      ["Authorization"] = "Bearer " .. tokens[i],
      ["Content-Type"] = "application/json",
      ["X-Request-ID"] = "b-" .. i,
   }, '{"items":[' .. table.concat(lines, ",") .. ']}')
end

function request()
   if head <= tail then
      local item = pending[head]
      pending[head] = nil
      head = head + 1
      return wrk.format("DELETE", "/api/v1/reservations/" .. item.id, {
         ["Authorization"] = "Bearer " .. tokens[item.buyer],
         ["X-Request-ID"] = "d-" .. item.buyer,
      })
   end
   return reserve()
end

function response(status, headers, body)
   local tag = header(headers, "X-Request-ID") or ""
   local kind, buyer = string.match(tag, "^(%a)%-(%d+)$")
   if kind == "d" then
      count(status, "release")
      return
   end
   count(status, "reserve")
   if status == 201 and buyer and math.random() < release_share then
      local id = string.match(body, '"id":"([%x%-]+)"')
      if id then
         tail = tail + 1
         pending[tail] = { id = id, buyer = tonumber(buyer) }
      end
   end
end
