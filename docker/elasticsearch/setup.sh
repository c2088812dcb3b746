#!/usr/bin/env bash
# One-shot of the compose stack, run after Elasticsearch is healthy (idempotent, safe to re-run):
#   1. the password of the built-in kibana_system user (Kibana's own connection);
#   2. two roles and their users, each allowed what its services do:
#        role            user                        indices "<prefix>*"          cluster
#        hiverl_writer   HIVERL_ES_USER              all (write, manage, read)    monitor, index templates, ILM
#                        (`hiverl index`, telemetry-setup, Logstash)
#        hiverl_reader   HIVERL_ES_DASHBOARD_USER    read, view_index_metadata    monitor (cluster health)
#                        (the dashboard: its searches and status ping)
#      The learner, the actors, the evaluator and the monitor do not use Elasticsearch;
#   3. the snapshot repository "hiverl-backups" on the es-snapshots volume (docs/persistence.md).
set -euo pipefail
es=http://elasticsearch:9200
prefix="${HIVERL_TELEMETRY_INDEX_PREFIX:-hiverl-}"

for name in ELASTIC_PASSWORD KIBANA_SYSTEM_PASSWORD HIVERL_ES_USER HIVERL_ES_PASSWORD \
  HIVERL_ES_DASHBOARD_USER HIVERL_ES_DASHBOARD_PASSWORD; do
  value="${!name:-}"
  if [[ -z "$value" || "$value" =~ [^A-Za-z0-9._~-] ]]; then
    echo "$name must be set and contain only letters, digits and . _ ~ - (see .env.example)" >&2
    exit 2
  fi
  if [[ "$name" == *PASSWORD && ${#value} -lt 8 ]]; then
    echo "$name must be at least 8 characters long" >&2
    exit 2
  fi
done
if [[ "$HIVERL_ES_USER" == "$HIVERL_ES_DASHBOARD_USER" ]]; then
  echo "HIVERL_ES_DASHBOARD_USER must differ from HIVERL_ES_USER (the dashboard only reads)" >&2
  exit 2
fi

# curl reads the credentials from a config file descriptor and bodies with passwords from stdin,
# so no password is on a command line (visible in `ps` on the host).
credentials() { printf 'user = "elastic:%s"\n' "$ELASTIC_PASSWORD"; }
call() { curl -fsS -K <(credentials) -H 'Content-Type: application/json' "$@"; echo; }

for _ in $(seq 60); do
  curl -fsS -K <(credentials) "$es/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null && break
  sleep 2
done

echo "setting the kibana_system password"
printf '{"password": "%s"}' "$KIBANA_SYSTEM_PASSWORD" |
  call -X POST "$es/_security/user/kibana_system/_password" --data-binary @-

echo "role hiverl_writer on ${prefix}*"
call -X PUT "$es/_security/role/hiverl_writer" --data-binary @- <<JSON
{
  "cluster": ["monitor", "manage_index_templates", "manage_ilm"],
  "indices": [{"names": ["${prefix}*"], "privileges": ["all"]}]
}
JSON

echo "role hiverl_reader on ${prefix}*"
call -X PUT "$es/_security/role/hiverl_reader" --data-binary @- <<JSON
{
  "cluster": ["monitor"],
  "indices": [{"names": ["${prefix}*"], "privileges": ["read", "view_index_metadata"]}]
}
JSON

echo "user ${HIVERL_ES_USER}"
printf '{"password": "%s", "roles": ["hiverl_writer"], "full_name": "hiverl indexers"}' "$HIVERL_ES_PASSWORD" |
  call -X PUT "$es/_security/user/${HIVERL_ES_USER}" --data-binary @-

echo "user ${HIVERL_ES_DASHBOARD_USER}"
printf '{"password": "%s", "roles": ["hiverl_reader"], "full_name": "hiverl dashboard"}' \
  "$HIVERL_ES_DASHBOARD_PASSWORD" |
  call -X PUT "$es/_security/user/${HIVERL_ES_DASHBOARD_USER}" --data-binary @-

echo "snapshot repository hiverl-backups"
chown 1000:0 /usr/share/elasticsearch/snapshots
call -X PUT "$es/_snapshot/hiverl-backups" \
  --data-binary '{"type": "fs", "settings": {"location": "/usr/share/elasticsearch/snapshots"}}'
echo "elasticsearch setup done"
