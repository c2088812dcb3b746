-- Give a worker index back (compare-and-delete): only if KEYS[1] still holds ARGV[1].
-- Returns 1 when released, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
