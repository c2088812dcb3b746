-- create(config_json, capacity, fanout, alpha) -> {created (0/1), stored config_json}
-- Creates an empty shard atomically unless it exists; either way returns the stored config.
if redis.call('EXISTS', META) == 1 then
  return {0, redis.call('HGET', META, 'config')}
end
local capacity, K, alpha = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local sizes = geometry(capacity, K)
redis.call('HSET', META, 'config', ARGV[1], 'capacity', capacity, 'fanout', K, 'alpha', ARGV[4],
  'cursor', 0, 'max_priority', 1, 'inserted_total', 0, 'sampled_total', 0, 'evicted_total', 0,
  'corrupt_dropped', 0)
-- Zero-filled strings: empty slots have mass 0; minima start at +inf (no non-zero mass yet).
local inf = struct.pack('<d', INF)
for l = 0, L do
  redis.call('SETRANGE', R(l), sizes[l] * 8 - 1, '\0')
  if l < L then redis.call('SETRANGE', P(l), sizes[l] * 8 - 1, '\0') end
  if l > 0 then
    redis.call('SET', N(l), string.rep(inf, sizes[l]))
    redis.call('SETRANGE', X(l), sizes[l] * 8 - 1, '\0')
  end
end
return {1, ARGV[1]}
