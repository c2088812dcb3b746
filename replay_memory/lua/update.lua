-- update(n, slots, generations, priorities) -> number applied
-- All three are n packed float64. An update whose slot was overwritten since it was sampled
-- (generation older than the ring) or whose entry was dropped is ignored; an id that was never
-- written is an error, raised before anything changes.
local n = tonumber(ARGV[1])
local slots = unpack_doubles(ARGV[2], n)
local gens = unpack_doubles(ARGV[3], n)
local prios = unpack_doubles(ARGV[4], n)
local m = meta_numbers('capacity', 'fanout', 'alpha', 'cursor', 'max_priority')
local C, K, alpha, T, maxp = m[1], m[2], m[3], m[4], m[5]
for i = 1, n do
  local s, g = slots[i], gens[i]
  if g < 0 or g >= T or g % C ~= s then
    return redis.error_reply(string.format(
      'ERR unknown id: index=%d generation=%d was never written (write sequence is at %d)', s, g, T))
  end
end
local sizes = geometry(C, K)
local check_dropped = redis.call('SCARD', DROPPED) > 0
local changed = {}
for i = 1, n do
  local s = slots[i]
  if gens[i] >= T - C and not (check_dropped and redis.call('SISMEMBER', DROPPED, s) == 1) then
    redis.call('SETRANGE', R(0), s * 8, struct.pack('<d', mass_of(prios[i], alpha)))
    if prios[i] > maxp then maxp = prios[i] end
    changed[#changed + 1] = s
  end
end
if #changed > 0 then
  propagate(sizes, K, groups_of(changed, K))
  redis.call('HSET', META, 'max_priority', fmt_num(maxp))
end
return #changed
