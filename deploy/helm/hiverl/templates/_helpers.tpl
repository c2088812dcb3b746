{{/* Names ------------------------------------------------------------------------------------------ */}}
{{- define "hiverl.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hiverl.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hiverl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hiverl.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels: the chart's, and a role's selector (call with (dict "root" $ "component" "learner")). */}}
{{- define "hiverl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "hiverl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "hiverl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hiverl.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hiverl.componentLabels" -}}
{{ include "hiverl.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image: (dict "root" $ "name" .Values.image.game) */}}
{{- define "hiverl.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag | toString -}}
{{- if or (eq $tag "latest") (eq $tag "") -}}
{{- fail "image.tag: give the images' exact tag (HIVERL_IMAGE_TAG), never latest" -}}
{{- end -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .name $tag -}}
{{- else -}}
{{- printf "%s:%s" .name $tag -}}
{{- end -}}
{{- end -}}

{{/* The memory's shard count: one per Redis server unless memory.shards says otherwise. */}}
{{- define "hiverl.shards" -}}
{{- $servers := len .Values.redis.hosts -}}
{{- if lt $servers 1 -}}
{{- fail "redis.hosts: give at least one host:port" -}}
{{- end -}}
{{- $shards := int (default $servers .Values.memory.shards) -}}
{{- if ne (mod $shards $servers) 0 -}}
{{- fail (printf "memory.shards=%d: a multiple of the %d Redis servers of redis.hosts" $shards $servers) -}}
{{- end -}}
{{- $shards -}}
{{- end -}}

{{/* Service URLs: credentials as $(VAR) references to the secret variables of "hiverl.env". */}}
{{/* The Redis user of a role: (dict "root" $ "user" "actor") -> its values (username, passwordKey). */}}
{{- define "hiverl.redisUser" -}}
{{- $user := index .root.Values.redis.users .user -}}
{{- if not $user.username -}}
{{- fail (printf "redis.users.%s.username: the ACL user of the role" .user) -}}
{{- end -}}
{{- toYaml $user -}}
{{- end -}}

{{- define "hiverl.redisPasswordVariable" -}}
{{- printf "REDIS_%s_PASSWORD" (upper .user) -}}
{{- end -}}

{{- define "hiverl.redisUrl" -}}
{{- $r := .root.Values.redis -}}
{{- $user := include "hiverl.redisUser" . | fromYaml -}}
{{- $scheme := ternary "rediss" "redis" (eq (toString $r.tls) "true") -}}
{{- $auth := "" -}}
{{- if $r.auth.existingSecret -}}
{{- $auth = printf "%s:$(%s)@" $user.username (include "hiverl.redisPasswordVariable" .) -}}
{{- end -}}
{{- $urls := list -}}
{{- range $r.hosts -}}
{{- $urls = append $urls (printf "%s://%s%s/%v" $scheme $auth . $r.database) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{/* The indexer's (writer) or the dashboard's (reader) Elasticsearch user: (dict "root" $ "user" "reader") */}}
{{- define "hiverl.elasticsearchUser" -}}
{{- $e := .root.Values.elasticsearch -}}
{{- if and (eq .user "reader") $e.dashboard.username -}}
{{- toYaml (dict "username" $e.dashboard.username "passwordKey" (required "elasticsearch.dashboard.passwordKey: the key of the dashboard user's password" $e.dashboard.passwordKey)) -}}
{{- else -}}
{{- toYaml (dict "username" $e.username "passwordKey" $e.auth.passwordKey) -}}
{{- end -}}
{{- end -}}

{{- define "hiverl.elasticsearchUrl" -}}
{{- $e := .root.Values.elasticsearch -}}
{{- $user := include "hiverl.elasticsearchUser" . | fromYaml -}}
{{- if $e.auth.existingSecret -}}
{{- printf "%s://%s:$(ELASTICSEARCH_PASSWORD)@%s" $e.scheme $user.username $e.host -}}
{{- else -}}
{{- printf "%s://%s" $e.scheme $e.host -}}
{{- end -}}
{{- end -}}

{{- define "hiverl.mongodbUri" -}}
{{- $m := .Values.mongodb -}}
{{- if $m.auth.existingSecret -}}
{{- printf "mongodb://%s:$(MONGODB_PASSWORD)@%s/%s?authSource=%s&authMechanism=SCRAM-SHA-256" $m.username $m.host $m.database $m.database -}}
{{- else -}}
{{- printf "mongodb://%s/%s" $m.host $m.database -}}
{{- end -}}
{{- end -}}

{{- define "hiverl.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .auth.existingSecret | quote }}
      key: {{ required (printf "%s: the key of the password in %s" .name .auth.existingSecret) .auth.passwordKey | quote }}
{{- end -}}

{{/* The environment of a hiverl container (compose's x-python-service): (dict "root" $ "redis" <the
     role's Redis user, or "" without Redis> "elasticsearch" <"writer", "reader" or "" without it>).
     Each role gets only its own credentials, as in compose.yaml. */}}
{{- define "hiverl.env" -}}
{{- $root := .root -}}
- name: HIVERL_HOME
  value: /var/lib/hiverl
{{- if .redis }}
{{- $user := include "hiverl.redisUser" (dict "root" $root "user" .redis) | fromYaml }}
{{- if $root.Values.redis.auth.existingSecret }}
{{ include "hiverl.secretEnv" (dict "name" (include "hiverl.redisPasswordVariable" (dict "user" .redis)) "auth" (dict "existingSecret" $root.Values.redis.auth.existingSecret "passwordKey" $user.passwordKey)) }}
{{- end }}
- name: REDIS_URL
  value: {{ include "hiverl.redisUrl" (dict "root" $root "user" .redis) | quote }}
{{- end }}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ $root.Values.kafka.bootstrapServers | quote }}
{{- if .elasticsearch }}
{{- $user := include "hiverl.elasticsearchUser" (dict "root" $root "user" .elasticsearch) | fromYaml }}
{{- if $root.Values.elasticsearch.auth.existingSecret }}
{{ include "hiverl.secretEnv" (dict "name" "ELASTICSEARCH_PASSWORD" "auth" (dict "existingSecret" $root.Values.elasticsearch.auth.existingSecret "passwordKey" $user.passwordKey)) }}
{{- end }}
- name: ELASTICSEARCH_URL
  value: {{ include "hiverl.elasticsearchUrl" (dict "root" $root "user" .elasticsearch) | quote }}
{{- end }}
{{- with $root }}
{{- if .Values.mongodb.auth.existingSecret }}
{{ include "hiverl.secretEnv" (dict "name" "MONGODB_PASSWORD" "auth" .Values.mongodb.auth) }}
{{- end }}
- name: MONGODB_URI
  value: {{ include "hiverl.mongodbUri" . | quote }}
- name: HIVERL_ARCHIVE_DATABASE
  value: {{ .Values.mongodb.database | quote }}
- name: HIVERL_TELEMETRY_INDEX_PREFIX
  value: {{ .Values.elasticsearch.indexPrefix | quote }}
- name: HIVERL_TELEMETRY_TOPIC_PARTITIONS
  value: {{ .Values.kafka.topicPartitions | quote }}
{{- end }}
{{- end -}}

{{/* The hive's settings (compose's hive-env): learner, evaluator and actors, (dict "root" $ "redis"
     <the role's Redis user>). */}}
{{- define "hiverl.hiveEnv" -}}
{{ include "hiverl.env" (dict "root" .root "redis" .redis) }}
{{- with .root }}
- name: CONFIG_SESSION_ID
  value: {{ .Values.hive.sessionId | quote }}
- name: CONFIG_ENV_ID
  value: {{ .Values.hive.envId | quote }}
- name: CONFIG_TOTAL_STEPS
  value: {{ .Values.hive.totalSteps | quote }}
- name: CONFIG_DEVICE
  value: {{ ternary .Values.learner.device "cpu" (gt (int .Values.learner.gpu) 0) | quote }}
- name: CONFIG_MODEL_DIR
  value: /var/lib/hiverl/models
- name: CONFIG_RUN_DIR
  value: /var/lib/hiverl/runs
{{- $shards := include "hiverl.shards" . | int }}
{{- if gt $shards 1 }}
- name: CONFIG_MEMORY__SHARDS
  value: {{ $shards | quote }}
{{- end }}
{{- with .Values.hive.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Probes: (dict "action" <a probe handler, as YAML> "probes" .Values.<role>.probes) -> startup,
     readiness and liveness probes with the same check. */}}
{{- define "hiverl.probes" -}}
{{- $p := .probes -}}
{{- $period := int $p.periodSeconds -}}
startupProbe:
  {{- .action | nindent 2 }}
  periodSeconds: 5
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ add (div (int $p.startupSeconds) 5) (mul (int $p.failureThreshold) (div $period 5)) }}
readinessProbe:
  {{- .action | nindent 2 }}
  periodSeconds: {{ $period }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.failureThreshold }}
livenessProbe:
  {{- .action | nindent 2 }}
  periodSeconds: {{ $period }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.livenessFailureThreshold }}
{{- end -}}

{{/* compose's health check of learner, evaluator and monitor: every Redis server of REDIS_URL answers. */}}
{{- define "hiverl.redisCheck" -}}
exec:
  command:
    - python
    - -c
    - "import redis; from hiverl.endpoints import Endpoints; [redis.Redis.from_url(u).ping() for u in Endpoints().redis_url.split(',')]"
{{- end -}}

{{/* What every pod shares: service account, security, pull secrets, scheduling of the role. */}}
{{- define "hiverl.podSpec" -}}
serviceAccountName: {{ include "hiverl.serviceAccountName" .root }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .role.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .role.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .role.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "hiverl.podMetadata" -}}
labels:
  {{- include "hiverl.selectorLabels" . | nindent 2 }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .root.Values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A volume of persistence.<name>: its claim, or an emptyDir when disabled. */}}
{{- define "hiverl.volume" -}}
{{- $v := index .root.Values.persistence .name -}}
- name: {{ .name }}
{{- if $v.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-%s" (include "hiverl.fullname" .root) .name) $v.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{- define "hiverl.replicas" -}}
{{- if .Values.hive.paused -}}0{{- else -}}1{{- end -}}
{{- end -}}
