-- insert(n, priorities, payload_1 .. payload_n) -> {first write sequence, entries evicted}
-- Writes n transitions into the next n slots of the ring (FIFO: the oldest are overwritten).
-- priorities: n packed float64 raw priorities (a negative value: use the largest seen so far),
-- or an empty string for "all take the largest seen so far".
local n = tonumber(ARGV[1])
local m = meta_numbers('capacity', 'fanout', 'alpha', 'cursor', 'max_priority')
local C, K, alpha, T, maxp = m[1], m[2], m[3], m[4], m[5]
if n < 1 or n > C then
  return redis.error_reply('ERR batch_size=' .. n .. ': an insert must hold 1..' .. C .. ' transitions (shard capacity)')
end
local sizes = geometry(C, K)

-- 1. Masses p^alpha of the new entries; the running maximum priority.
local masses = {}
if ARGV[2] == '' then
  local v = mass_of(maxp, alpha)
  for i = 1, n do masses[i] = v end
else
  local p = unpack_doubles(ARGV[2], n)
  for i = 1, n do if p[i] > maxp then maxp = p[i] end end
  local v_max = mass_of(maxp, alpha)
  for i = 1, n do
    if p[i] < 0 then masses[i] = v_max else masses[i] = mass_of(p[i], alpha) end
  end
end

-- 2. Slots: one or two contiguous runs of the ring.
local start = T % C
local len1 = math.min(n, C - start)
redis.call('SETRANGE', R(0), start * 8, pack_doubles(masses, 1, len1))
if len1 < n then redis.call('SETRANGE', R(0), 0, pack_doubles(masses, len1 + 1, n)) end

-- 3. Payloads (HSET counts new fields: the rest replaced live entries, i.e. were evicted).
local created = 0
local slots = {}
local i = 1
while i <= n do
  local args = {}
  local j = math.min(n, i + 499)
  for k = i, j do
    local slot = (start + k - 1) % C
    slots[k] = slot
    args[#args + 1] = slot
    args[#args + 1] = ARGV[2 + k]
  end
  created = created + redis.call('HSET', DATA, unpack(args))
  i = j + 1
end
if redis.call('SCARD', DROPPED) > 0 then
  for k = 1, n, 500 do redis.call('SREM', DROPPED, unpack(slots, k, math.min(n, k + 499))) end
end

-- 4. Ancestors of both runs, bottom-up.
local groups = {}
if len1 < n then
  for g = 0, floor((n - len1 - 1) / K) do groups[#groups + 1] = g end
end
for g = floor(start / K), floor((start + len1 - 1) / K) do
  if #groups == 0 or g > groups[#groups] then groups[#groups + 1] = g end
end
propagate(sizes, K, groups)

-- 5. Counters.
local evicted = n - created
redis.call('HSET', META, 'cursor', T + n, 'max_priority', fmt_num(maxp))
redis.call('HINCRBY', META, 'inserted_total', n)
redis.call('HINCRBY', META, 'evicted_total', evicted)
return {T, evicted}
