-- drop(n, slots, generations) -> number dropped
-- Removes entries found corrupt by a sampler (if still the same write) and counts them.
local n = tonumber(ARGV[1])
local slots = unpack_doubles(ARGV[2], n)
local gens = unpack_doubles(ARGV[3], n)
local m = meta_numbers('capacity', 'fanout', 'cursor')
local C, K, T = m[1], m[2], m[3]
local sizes = geometry(C, K)
local changed = {}
for i = 1, n do
  local s, g = slots[i], gens[i]
  if g >= T - C and g < T and g % C == s and redis.call('HDEL', DATA, s) == 1 then
    redis.call('SADD', DROPPED, s)
    redis.call('SETRANGE', R(0), s * 8, struct.pack('<d', 0))
    changed[#changed + 1] = s
  end
end
if #changed > 0 then
  propagate(sizes, K, groups_of(changed, K))
  redis.call('HINCRBY', META, 'corrupt_dropped', #changed)
end
return #changed
