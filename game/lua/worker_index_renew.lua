-- Extend a worker index's lease (compare-and-expire): only while KEYS[1] still holds ARGV[1].
-- ARGV[2]: the lease in ms. Returns 1 when renewed, 0 when the index belongs to someone else.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
