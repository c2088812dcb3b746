-- sample(n, fractions, strict) -> {cursor, size, packed (total, min) mass, slots, masses, payloads}
-- fractions: n packed float64 in [0, 1), sorted (stratified by the client). Draw j is the slot
-- where the running sum of masses passes fractions[j] * total: one descent per draw, each level
-- a binary search in the group's prefix sums (log2(N) comparisons in all). Upper levels small
-- enough are fetched whole once per call; groups are fetched once per call and shared by draws.
-- strict: fail if n exceeds the entries stored (single-shard memories; multi-shard clients check
-- against the whole memory themselves).
local n = tonumber(ARGV[1])
local m = meta_numbers('capacity', 'fanout', 'cursor')
local C, K, T = m[1], m[2], m[3]
local size = redis.call('HLEN', DATA)
if ARGV[3] == 'strict' and n > size then
  return redis.error_reply('ERR batch_size=' .. n .. ' exceeds the ' .. size .. ' transitions stored in this shard')
end
local sizes = geometry(C, K)
local total = read1(R(L), 0)
local min_mass = read1(N(L), 0)
if not (total > 0) then
  return redis.error_reply('ERR the shard holds no transition with a non-zero priority')
end
local u = unpack_doubles(ARGV[2], n)

-- 1. Whole levels worth fetching for this many draws.
local whole = {}
for l = 1, L - 1 do
  if sizes[l] <= 256 * n then whole[l] = redis.call('GETRANGE', P(l), 0, -1) end
end

-- 2. One descent per draw.
local cache = {}
local slots, masses = {}, {}
for j = 1, n do
  local t = u[j] * total
  local g = 0      -- group being searched at level l (= its parent's index at level l+1)
  local mass = 0
  for l = L - 1, 0, -1 do
    local first = g * K
    local count = min(K, sizes[l] - first)
    local s, base = whole[l], first
    if not s then
      local key = l * 4294967296 + g
      s = cache[key]
      if not s then s = read_range(P(l), first, count); cache[key] = s end
      base = 0
    end
    -- first c with prefix[c] > t (binary search; pc = prefix[c], prev = prefix[c - 1] or 0)
    -- (pc is set whenever hi moves and prev whenever lo moves, so each is read at most once more)
    local lo, hi = 0, count - 1
    local pc, prev = nil, 0
    while lo < hi do
      local mid = lo + hi
      mid = (mid - mid % 2) / 2  -- integer halving without a C call
      local v = upk('<d', s, (base + mid) * 8 + 1)
      if v > t then hi = mid; pc = v else lo = mid + 1; prev = v end
    end
    if not pc then pc = upk('<d', s, (base + hi) * 8 + 1) end
    if not (pc > t) then
      -- rounding put t at the end of the group: take its last child with non-zero mass
      while lo > 0 and not (pc > prev) do
        lo = lo - 1
        pc = prev
        prev = 0
        if lo > 0 then prev = upk('<d', s, (base + lo - 1) * 8 + 1) end
      end
      if not (pc > prev) then error('replay memory: sum tree inconsistent at level ' .. l) end
      t = prev + (pc - prev) * 0.5
    end
    t = t - prev
    mass = pc - prev
    g = first + lo
  end
  slots[j] = g
  masses[j] = mass
end

-- 3. Payloads of the drawn slots, read in the same atomic step.
local payloads = {}
for i = 1, n, 500 do
  local part = redis.call('HMGET', DATA, unpack(slots, i, min(n, i + 499)))
  for k = 1, #part do payloads[i + k - 1] = part[k] end
end
redis.call('HINCRBY', META, 'sampled_total', n)
return {T, size, struct.pack('<dd', total, min_mass), pack_doubles(slots, 1, n), pack_doubles(masses, 1, n), payloads}
