#!/usr/bin/env bash
# services/kafka.sh up|down|status|fetch: one Apache Kafka node in KRaft mode
# (broker and controller in one JVM) on 127.0.0.1:9092, for eddy's tests.
# Jars, data and log live under .cache/kafka; see docs/services.md.
#
# A test that must stop its broker starts one of its own (internal/testenv):
# EDDY_SERVICE_DIR puts its config, data, log and pid there (the jars stay in
# .cache/kafka/libs), and EDDY_KAFKA_PORT moves every port of the config
# (9092, 9093, ...) by the same offset.
set -euo pipefail
SERVICE=kafka
# shellcheck source=services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=127.0.0.1
PORT=${EDDY_KAFKA_PORT:-9092}
DIR=${EDDY_SERVICE_DIR:-$CACHE/kafka}
LIBS="$CACHE/kafka/libs"
PIDFILE="$DIR/kafka.pid"
CONF="$DIR/server.properties"
LOG="$DIR/kafka.log"
OUT="$DIR/kafka.out"
MARKER="kafka.Kafka $CONF"
START_TIMEOUT=${EDDY_KAFKA_START_TIMEOUT:-180}

# shift_ports CONF: every port 9092-9099 in CONF moved by PORT-9092 (a
# private broker's listeners, controller and any other).
shift_ports() {
  ((PORT != 9092)) || return 0
  [[ $PORT =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65528)) || die "EDDY_KAFKA_PORT=$PORT: want a port number"
  perl -pi -e 's/(?<=:)(909[2-9])\b/$1 - 9092 + '"$PORT"'/ge' "$1"
}

up() {
  mkdir -p "$DIR"
  build_check
  already_up EDDY_KAFKA_BROKERS "" "$CHECK" kafka "$HOST:$PORT" && return 0

  local java
  java=$(java_bin)
  (($(java_major "$java") >= 17)) || die "$java is older than 17; Kafka 4 needs Java 17 or newer (set JAVA_HOME)"
  fetch_jars "$ROOT/services/kafka/pom.xml" "$LIBS"

  sed "s#@DIR@#$DIR#g" "$ROOT/services/kafka/server.properties" >"$CONF"
  shift_ports "$CONF"
  cp "$ROOT/services/kafka/log4j2.yaml" "$DIR/log4j2.yaml"
  local jvm=(-Dkafka.logs.dir="$DIR" -Dlog4j2.configurationFile="$DIR/log4j2.yaml")

  rotate_logs "$LOG" "$OUT"
  if [[ ! -f $DIR/data/meta.properties ]]; then
    say "formatting storage in $DIR/data"
    local id
    id=$("$java" "${jvm[@]}" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$OUT") ||
      { show_logs "$OUT"; die "kafka-storage random-uuid failed"; }
    "$java" "${jvm[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format --standalone \
      --cluster-id "$id" --config "$CONF" >>"$OUT" 2>&1 ||
      { show_logs "$OUT" "$LOG"; die "kafka-storage format failed"; }
  fi

  say "starting Kafka on $HOST:$PORT; log: $LOG"
  nohup "$java" -Xms512m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "${jvm[@]}" \
    -cp "$LIBS/*" kafka.Kafka "$CONF" >>"$OUT" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDFILE"

  local rc=0
  wait_ready "$START_TIMEOUT" "$pid" ready "$pid" "$PORT" "$CHECK" kafka "$HOST:$PORT" || rc=$?
  ((rc == 0)) || start_failed Kafka "$pid" "$rc" 30 "answer a produce/consume on $HOST:$PORT"
  say "up (pid $pid) on $HOST:$PORT, produce/consume checked; log: $LOG"
}

case ${1:-} in
fetch) fetch "$ROOT/services/kafka/pom.xml" ;;
up) up ;;
down) down "$PIDFILE" "$MARKER" 60 ;;
status) status ;;
*)
  echo "usage: $0 up|down|status|fetch" >&2
  exit 2
  ;;
esac
