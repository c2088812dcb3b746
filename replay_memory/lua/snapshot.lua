-- snapshot() copies the shard's keys to the snapshot keys atomically (a consistent point in
-- time the client then reads at leisure). KEYS: the shard's keys, then as many snapshot keys.
local half = #KEYS / 2
for i = 1, half do
  redis.call('DEL', KEYS[half + i])
  redis.call('COPY', KEYS[i], KEYS[half + i])
end
return half
