#!/usr/bin/env bash
# server.properties from the KAFKA_* environment, as the apache/kafka image does: KAFKA_ dropped,
# lower case, "___" -> "-", "__" -> "_", "_" -> "."; KAFKA_HEAP_OPTS and KAFKA_OPTS go to the JVM.
set -euo pipefail
props=/opt/kafka/config/server.properties
: > "$props"
for var in $(compgen -e); do
  case "$var" in
    KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_LOG4J_OPTS) ;;
    KAFKA_*)
      key="${var#KAFKA_}"
      key="${key,,}"
      key="${key//___/-}"
      key="${key//__/@}"
      key="${key//_/.}"
      key="${key//@/_}"
      printf '%s=%s\n' "$key" "${!var}" >> "$props" ;;
  esac
done
: "${CLUSTER_ID:?CLUSTER_ID is not set}"
jvm=(java ${KAFKA_HEAP_OPTS:--Xmx512m} -XX:+UseG1GC -Djava.awt.headless=true
     -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties ${KAFKA_OPTS:-} -cp '/opt/kafka/libs/*')
"${jvm[@]}" kafka.tools.StorageTool format --ignore-formatted "--cluster-id=$CLUSTER_ID" -c "$props"
exec "${jvm[@]}" kafka.Kafka "$props"
