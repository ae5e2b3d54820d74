#!/usr/bin/env bash
# services/cassandra.sh up|down|status|fetch: one Apache Cassandra 5.0 node with CQL
# on 127.0.0.1:9042, for eddy's tests. Jars, data and log live under
# .cache/cassandra; see docs/services.md.
set -euo pipefail
SERVICE=cassandra
# shellcheck source=services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=127.0.0.1
PORT=9042
DIR="$CACHE/cassandra"
LIBS="$DIR/libs"
PIDFILE="$DIR/cassandra.pid"
CONF="$DIR/cassandra.yaml"
LOG="$DIR/cassandra.log"
OUT="$DIR/cassandra.out"
MAIN=org.apache.cassandra.service.CassandraDaemon
# what /proc/PID/cmdline must hold for a recorded pid to be this checkout's node
MARKER="-Dcassandra.config=file://$CONF"
START_TIMEOUT=${EDDY_CASSANDRA_START_TIMEOUT:-240}

# cassandra_java: a java that Cassandra 5.0 runs on (17 or 11), preferring
# JAVA_HOME, then PATH, then Debian's openjdk-17 (the machine may also carry a
# newer JDK, on which Cassandra 5.0 does not start).
cassandra_java() {
  local j m
  for j in "$(java_bin)" /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/*-17*/bin/java; do
    [[ -x $j ]] || continue
    m=$(java_major "$j")
    if [[ $m == 17 || $m == 11 ]]; then
      printf '%s\n' "$j"
      return 0
    fi
  done
  die "no Java 17 or 11 found: Cassandra 5.0 runs on those (set JAVA_HOME; Debian: apt-get install openjdk-17-jdk-headless)"
}

up() {
  mkdir -p "$DIR"
  build_check
  already_up EDDY_CASSANDRA_HOSTS "" "$CHECK" cassandra "$HOST:$PORT" && return 0

  local java
  java=$(cassandra_java)
  fetch_jars "$ROOT/services/cassandra/pom.xml" "$LIBS"
  mkdir -p "$DIR/data" "$DIR/commitlog" "$DIR/saved_caches" "$DIR/hints" "$DIR/cdc_raw"
  sed "s#@DIR@#$DIR#g" "$ROOT/services/cassandra/cassandra.yaml" >"$CONF"
  cp "$ROOT/services/cassandra/logback.xml" "$DIR/logback.xml"

  local opts=() line
  while IFS= read -r line; do
    line=${line%%#*}
    line=${line//[[:space:]]/}
    [[ -n $line ]] && opts+=("$line")
  done <"$ROOT/services/cassandra/jvm17.options"
  local jamm=("$LIBS"/jamm-*.jar)
  [[ -f ${jamm[0]} ]] || die "no jamm jar in $LIBS"

  rotate_logs "$LOG" "$OUT"
  say "starting Cassandra on $HOST:$PORT; log: $LOG"
  nohup "$java" -Xms1G -Xmx1G "${opts[@]}" \
    -javaagent:"${jamm[0]}" \
    -Dcassandra.config="file://$CONF" \
    -Dcassandra.storagedir="$DIR" \
    -Dcassandra.logdir="$DIR" \
    -Dlogback.configurationFile="file://$DIR/logback.xml" \
    -Dcassandra-foreground=yes \
    -cp "$LIBS/*" "$MAIN" >>"$OUT" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDFILE"

  local rc=0
  wait_ready "$START_TIMEOUT" "$pid" ready "$pid" "$PORT" "$CHECK" cassandra "$HOST:$PORT" || rc=$?
  ((rc == 0)) || start_failed Cassandra "$pid" "$rc" 60 "answer CQL on $HOST:$PORT"
  say "up (pid $pid) on $HOST:$PORT, $LAST_CHECK answered a CQL query; log: $LOG"
}

case ${1:-} in
fetch) fetch "$ROOT/services/cassandra/pom.xml" ;;
up) up ;;
down) down "$PIDFILE" "$MARKER" 90 ;;
status) status ;;
*)
  echo "usage: $0 up|down|status|fetch" >&2
  exit 2
  ;;
esac
