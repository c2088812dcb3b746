-- restore(n, slots, masses, payload_1 .. payload_n) writes saved entries into their slots of
-- an empty shard (used by `hiverl memory load`), then recomputes their ancestors.
local n = tonumber(ARGV[1])
local slots = unpack_doubles(ARGV[2], n)
local masses = unpack_doubles(ARGV[3], n)
local m = meta_numbers('capacity', 'fanout')
local C, K = m[1], m[2]
local sizes = geometry(C, K)
for i = 1, n do
  redis.call('SETRANGE', R(0), slots[i] * 8, struct.pack('<d', masses[i]))
  redis.call('HSET', DATA, slots[i], ARGV[3 + i])
end
propagate(sizes, K, groups_of(slots, K))
return n
