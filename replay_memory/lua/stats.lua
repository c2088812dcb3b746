-- stats() -> {size, packed float64 (total, min, max) masses, meta field/value pairs}
local size = redis.call('HLEN', DATA)
local masses = struct.pack('<ddd', read1(R(L), 0), read1(N(L), 0), read1(X(L), 0))
return {size, masses, redis.call('HGETALL', META)}
