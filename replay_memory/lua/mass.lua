-- mass() -> {size, packed float64 (total, min) mass}: what a multi-shard sampler splits on.
return {redis.call('HLEN', DATA), struct.pack('<dd', read1(R(L), 0), read1(N(L), 0))}
