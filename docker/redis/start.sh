#!/bin/sh
# Starts Redis in the compose stack: the project's replay_memory/redis.conf (AOF + RDB snapshots),
# then what differs in a container: port, bind address, data dir and the ACL users.
#
# The default user is switched off. Every role signs in as its own user that may run only the
# commands it issues (including those its Lua scripts call: Redis checks them too) on only the
# hive's keys. Key patterns: memory = "{hive-*" (each shard's meta, data, dropped and sum tree,
# replay_memory/memory.py shard_keys), board = "hiverl:{*}:board" (game/board.py), leases =
# "hiverl:{*}:worker-index:*" (game/worker_index.py). A "( ... )" selector grants its commands on its
# keys only, so e.g. the actor's SET reaches the memory and its leases, never the board.
#
#   user          keys                          commands
#   $REDIS_USER   all                           all but @admin, FLUSHALL, FLUSHDB (+BGSAVE): operators, `hiverl`
#   learner       memory                        the memory's scripts (create, sample, update, drop, insert)
#                 board                         read, publish weights (script), counters, stop flag set/clear
#   actor         memory                        the create and insert scripts
#                 board                         read, count inserts (HINCRBY)
#                 leases                        claim, renew, release (EVAL), count (MGET)
#   evaluator     board                         read, request a stop (HSETNX)
#   monitor       memory, read only (%R~)       the stats script (EVALSHA_RO), HGET, MEMORY USAGE
#   dashboard     board                         the stop script (EXISTS, HSETNX, HGET)
#   every role:   PING; INFO where the memory is opened (cluster check) or watched; SCRIPT LOAD
#                 where scripts run; CLIENT SETINFO (redis-py names its connections; Redis >= 7.2).
# No role may FLUSHALL, FLUSHDB, CONFIG, KEYS, SCRIPT FLUSH or touch other keys (docs/scaling.md).
#
# The ACL file is written with mode 600 outside the data volume, so no password is on a command
# line or in a backup. REDIS_CONF, REDIS_DATA, REDIS_PORT and REDIS_ACL_FILE default to the
# container's paths (tests/test_compose.py and tests/test_redis_users.py run this script against a
# local redis-server with their own).
set -eu
: "${REDIS_USER:?REDIS_USER is not set}"
case "$REDIS_USER" in
  "" | *[!A-Za-z0-9._-]*)
    echo "REDIS_USER may only contain letters, digits and . _ -" >&2
    exit 2 ;;
esac
for variable in REDIS_PASSWORD REDIS_LEARNER_PASSWORD REDIS_ACTOR_PASSWORD REDIS_EVALUATOR_PASSWORD \
  REDIS_MONITOR_PASSWORD REDIS_DASHBOARD_PASSWORD; do
  eval "value=\${$variable:-}"
  if [ -z "$value" ]; then
    echo "$variable is not set" >&2
    exit 2
  fi
  case "$value" in
    *[!A-Za-z0-9._~-]*)
      echo "$variable may only contain letters, digits and . _ ~ - (it is embedded in REDIS_URL)" >&2
      exit 2 ;;
  esac
done

# redis-py sends CLIENT SETINFO on every connection (ignoring a refusal); Redis < 7.2 lacks the
# command and would reject the rule, Redis >= 7.2 would log each refusal in ACL LOG.
version=$(redis-server --version | sed -n 's/.* v=\([0-9]*\.[0-9]*\)\..*/\1/p')
major=${version%%.*}
minor=${version#*.}
setinfo=""
if [ "${major:-0}" -gt 7 ] || { [ "${major:-0}" -eq 7 ] && [ "${minor:-0}" -ge 2 ]; }; then
  setinfo=" +client|setinfo"
fi

memory="~{hive-*"
board="~hiverl:{*}:board"
leases="~hiverl:{*}:worker-index:*"
# What the memory's scripts call (replay_memory/lua): create, insert, and the learner's sample,
# update and drop.
creates="+exists +hget +hset +set +setrange +getrange +hmget"
inserts="+scard +srem +hincrby"
learns="+hlen +sismember +sadd +hdel"
base="-@all +ping$setinfo"

acl="${REDIS_ACL_FILE:-/tmp/hiverl-users.acl}"
umask 077
{
  echo "user default off"
  printf 'user %s on >%s %s\n' "$REDIS_USER" "$REDIS_PASSWORD" \
    "~* &* +@all -@admin -flushall -flushdb +bgsave +bgrewriteaof"
  printf 'user learner on >%s %s\n' "$REDIS_LEARNER_PASSWORD" \
    "$base +info +script|load +evalsha +evalsha_ro $creates $inserts $learns $memory ($board +evalsha +hmget +hset +hincrby +hsetnx +hdel)"
  printf 'user actor on >%s %s\n' "$REDIS_ACTOR_PASSWORD" \
    "$base +info +script|load +evalsha $creates $inserts $memory ($board +hmget +hincrby) ($leases +eval +get +set +pexpire +del +mget)"
  printf 'user evaluator on >%s %s\n' "$REDIS_EVALUATOR_PASSWORD" "$base +hmget +hsetnx $board"
  printf 'user monitor on >%s %s\n' "$REDIS_MONITOR_PASSWORD" \
    "$base +info +script|load +evalsha_ro +hget +hlen +getrange +hgetall +memory|usage %R$memory"
  printf 'user dashboard on >%s %s\n' "$REDIS_DASHBOARD_PASSWORD" \
    "$base +script|load +evalsha +exists +hget +hsetnx $board"
} > "$acl"
exec redis-server "${REDIS_CONF:-/usr/local/etc/redis/redis.conf}" \
  --port "${REDIS_PORT:-6379}" --bind "${REDIS_BIND:-0.0.0.0}" --protected-mode no \
  --dir "${REDIS_DATA:-/data}" --aclfile "$acl"
