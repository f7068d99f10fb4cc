-- reserve / sold-out: every request reserves one unit of one product, buyers in turn.
-- Args: tokens file (one token a line), product id.

local requests = {}
local n, i = 0, 0

function init(args)
   local body = '{"items":[{"product_id":' .. args[2] .. ',"quantity":1}]}'
   for token in io.lines(args[1]) do
      n = n + 1
      requests[n] = wrk.format("POST", "/api/v1/reservations", {
         ["Authorization"] = "Bearer " .. token,
         ["Content-Type"] = "application/json",
      }, body)
   end
end

function request()
   i = i % n + 1
   return requests[i]
end

function response(status, headers, body)
   count(status)
end
