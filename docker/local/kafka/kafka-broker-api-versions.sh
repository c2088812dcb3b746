#!/usr/bin/env bash
# Stands in for the official script at the same path (compose.yaml's health check calls it): exits 0
# once the broker at --bootstrap-server answers and the cluster has a controller.
set -euo pipefail
server=localhost:9092
while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap-server) server="$2"; shift 2 ;;
    *) shift ;;
  esac
done
exec java ${KAFKA_HEAP_OPTS:--Xmx64m} -cp '/opt/kafka/libs/*:/opt/kafka/health' BrokerReady "$server"
