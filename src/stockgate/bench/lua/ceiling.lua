-- ceiling: GET /healthz, the hello-world reference of the same stack.
-- Args: none.

local req

function init(args)
   req = wrk.format("GET", "/healthz")
end

function request()
   return req
end

function response(status, headers, body)
   count(status)
end
