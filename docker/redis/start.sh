#!/bin/sh
# Starts Redis in the compose stack: the project's replay_memory/redis.conf (AOF + RDB snapshots),
# then what differs in a container: port, bind address, data dir and the ACL users.
# The default user is switched off; the workers' user may do everything the replay memory needs
# (keys, scripts, INFO, BGSAVE) but no administration and no FLUSHALL/FLUSHDB. The ACL file is
# written with mode 600 outside the data volume, so the password is on no command line and in no
# backup. REDIS_CONF, REDIS_DATA, REDIS_PORT and REDIS_ACL_FILE default to the container's paths
# (tests/test_compose.py runs this script against a local redis-server with its own).
set -eu
: "${REDIS_USER:?REDIS_USER is not set}"
: "${REDIS_PASSWORD:?REDIS_PASSWORD is not set}"
case "$REDIS_PASSWORD" in
  *[!A-Za-z0-9._~-]*)
    echo "REDIS_PASSWORD may only contain letters, digits and . _ ~ - (it is embedded in REDIS_URL)" >&2
    exit 2 ;;
esac
case "$REDIS_USER" in
  "" | *[!A-Za-z0-9._-]*)
    echo "REDIS_USER may only contain letters, digits and . _ -" >&2
    exit 2 ;;
esac
acl="${REDIS_ACL_FILE:-/tmp/hiverl-users.acl}"
umask 077
printf 'user default off\nuser %s on >%s ~* &* +@all -@admin -flushall -flushdb +bgsave +bgrewriteaof\n' \
  "$REDIS_USER" "$REDIS_PASSWORD" > "$acl"
exec redis-server "${REDIS_CONF:-/usr/local/etc/redis/redis.conf}" \
  --port "${REDIS_PORT:-6379}" --bind "${REDIS_BIND:-0.0.0.0}" --protected-mode no \
  --dir "${REDIS_DATA:-/data}" --aclfile "$acl"
