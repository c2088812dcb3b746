-- Shared prelude of every replay-memory script (prepended by replay_memory/scripts.py).
--
-- One shard of the memory is a set of keys sharing one hash tag, passed in KEYS as:
--   KEYS[1] meta     hash: capacity, fanout, alpha, cursor (write sequence), counters, config
--   KEYS[2] data     hash: slot -> serialized hiverl.v1.Transition
--   KEYS[3] dropped  set of slots whose entry was found corrupt and removed
--   then four families of little-endian float64 strings forming a K-ary sum tree over the
--   sampling masses p^alpha, level 0 being the slots and level L a single entry (the total):
--   R(l), l = 0..L    raw values: R(0) the masses, R(l+1)[g] = sum of group g of R(l)
--   P(l), l = 0..L-1  prefix sums inside each group of K entries of R(l): sampling binary-
--                     searches them, so a descent costs log2(N) comparisons at any fanout
--   N(l), X(l), l = 1..L  minimum (of non-zero masses) and maximum of the masses below.
-- Group g of level l is entries g*K .. g*K+K-1; its parent is entry g of level l+1.
local META, DATA, DROPPED = KEYS[1], KEYS[2], KEYS[3]
local L = (#KEYS - 4) / 4
local INF = math.huge
local floor, min, max = math.floor, math.min, math.max
local upk = struct.unpack

local function R(l) return KEYS[4 + l] end
local function P(l) return KEYS[5 + L + l] end
local function N(l) return KEYS[4 + 2 * L + l] end
local function X(l) return KEYS[4 + 3 * L + l] end

local fmt_cache = {}
local function fmt(n)
  local f = fmt_cache[n]
  if not f then f = '<' .. string.rep('d', n); fmt_cache[n] = f end
  return f
end

-- Unpacks n little-endian float64 from s at byte offset pos (1-based), in chunks: Lua's C stack
-- is bounded.
local function unpack_doubles(s, n, pos)
  local out = {}
  pos = pos or 1
  local done = 0
  while done < n do
    local c = min(256, n - done)
    local part = {upk(fmt(c), s, pos)}
    for i = 1, c do out[done + i] = part[i] end
    pos = part[c + 1]
    done = done + c
  end
  return out
end

local function pack_doubles(t, first, last)
  local parts = {}
  local i = first
  while i <= last do
    local j = min(last, i + 255)
    parts[#parts + 1] = struct.pack(fmt(j - i + 1), unpack(t, i, j))
    i = j + 1
  end
  return table.concat(parts)
end

-- Entries [first, first + count) of a float64 string, as a string.
local function read_range(key, first, count)
  local s = redis.call('GETRANGE', key, first * 8, (first + count) * 8 - 1)
  if #s ~= count * 8 then error('replay memory: level key ' .. key .. ' is truncated') end
  return s
end

local function read1(key, i) return upk('<d', read_range(key, i, 1)) end

local function fmt_num(x) return string.format('%.17g', x) end

-- Size of every level for a shard of `capacity` slots and fanout K.
local function geometry(capacity, K)
  local sizes = {[0] = capacity}
  local l = 0
  repeat
    l = l + 1
    sizes[l] = math.ceil(sizes[l - 1] / K)
  until sizes[l] == 1
  if l ~= L then error('replay memory: ' .. L .. ' tree levels passed, ' .. l .. ' expected') end
  return sizes
end

-- Recomputes the tree above changed groups of level 0. groups: sorted, unique group indices.
-- Per level, each run of consecutive groups is read with one GETRANGE and written with one
-- SETRANGE per key family.
local function propagate(sizes, K, groups)
  for l = 0, L - 1 do
    local parents, last = {}, -1
    local i = 1
    while i <= #groups do
      local g0 = groups[i]
      local g1 = g0
      while i < #groups and groups[i + 1] == g1 + 1 do i = i + 1; g1 = g1 + 1 end
      i = i + 1
      local first = g0 * K
      local count = min((g1 + 1) * K, sizes[l]) - first
      local vals = unpack_doubles(read_range(R(l), first, count), count)
      local mins, maxs
      if l > 0 then
        mins = unpack_doubles(read_range(N(l), first, count), count)
        maxs = unpack_doubles(read_range(X(l), first, count), count)
      end
      local prefix, sums, lows, highs = {}, {}, {}, {}
      for g = g0, g1 do
        local s, lo, hi = 0, INF, 0
        for e = g * K - first + 1, min((g + 1) * K, sizes[l]) - first do
          local v = vals[e]
          s = s + v
          prefix[e] = s
          if l == 0 then
            if v > 0 and v < lo then lo = v end
            if v > hi then hi = v end
          else
            if mins[e] < lo then lo = mins[e] end
            if maxs[e] > hi then hi = maxs[e] end
          end
        end
        local k = g - g0 + 1
        sums[k], lows[k], highs[k] = s, lo, hi
        local p = floor(g / K)
        if p ~= last then parents[#parents + 1] = p; last = p end
      end
      redis.call('SETRANGE', P(l), first * 8, pack_doubles(prefix, 1, count))
      redis.call('SETRANGE', R(l + 1), g0 * 8, pack_doubles(sums, 1, #sums))
      redis.call('SETRANGE', N(l + 1), g0 * 8, pack_doubles(lows, 1, #lows))
      redis.call('SETRANGE', X(l + 1), g0 * 8, pack_doubles(highs, 1, #highs))
    end
    groups = parents
  end
end

-- Sorted unique level-0 groups of a list of slots.
local function groups_of(slots, K)
  local gs = {}
  for i = 1, #slots do gs[i] = floor(slots[i] / K) end
  table.sort(gs)
  local out, last = {}, -1
  for i = 1, #gs do if gs[i] ~= last then out[#out + 1] = gs[i]; last = gs[i] end end
  return out
end

local function mass_of(p, alpha)
  if alpha == 0 then return 1 end
  return p ^ alpha
end

local function meta_numbers(...)
  local m = redis.call('HMGET', META, ...)
  for i = 1, #m do
    if not m[i] then error('replay memory: shard metadata is missing (memory not created?)') end
    m[i] = tonumber(m[i])
  end
  return m
end
