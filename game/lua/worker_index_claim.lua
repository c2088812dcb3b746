-- Claim a worker index of one hive, atomically.
-- KEYS: the hive's slot keys, index 0 first. ARGV[1]: the holder's name, ARGV[2]: the lease in ms.
-- Returns this holder's index (its lease refreshed) if it holds one, else the lowest free index
-- (taken with SET NX PX: two replicas racing for one slot cannot both win), else -1.
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    return i - 1
  end
end
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
    return i - 1
  end
end
return -1
