#!/usr/bin/env bash
# services/kafka.sh up|down|status|fetch: one Apache Kafka node in KRaft mode
# (broker and controller in one JVM) on 127.0.0.1:9092, for eddy's tests, with
# a second listener on 127.0.0.1:9094 that takes only TLS and SASL (SCRAM-SHA-512
# and PLAIN). Jars, data, certificates and log live under .cache/kafka; see
# docs/services.md.
#
# A test that must stop its broker starts one of its own (internal/testenv):
# EDDY_KAFKA_DIR (or EDDY_SERVICE_DIR) puts its config, data, certificates, log
# and pid there (the jars stay in .cache/kafka/libs), and EDDY_KAFKA_PORT moves
# its listeners: the controller and the SASL_SSL listener take the next two
# ports unless EDDY_KAFKA_CONTROLLER_PORT and EDDY_KAFKA_SECURE_PORT say.
set -euo pipefail
SERVICE=kafka
# shellcheck source=services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=127.0.0.1
PORT=${EDDY_KAFKA_PORT:-9092}
CONTROLLER_PORT=${EDDY_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
SECURE_PORT=${EDDY_KAFKA_SECURE_PORT:-$((PORT + 2))}
DIR=${EDDY_KAFKA_DIR:-${EDDY_SERVICE_DIR:-$CACHE/kafka}}
LIBS="$CACHE/kafka/libs"
PIDFILE="$DIR/kafka.pid"
CONF="$DIR/server.properties"
LOG="$DIR/kafka.log"
OUT="$DIR/kafka.out"
MARKER="kafka.Kafka $CONF"
START_TIMEOUT=${EDDY_KAFKA_START_TIMEOUT:-180}

# The SASL_SSL listener's test users; services/env.sh exports the same.
TLS_DIR="$DIR/tls"
SCRAM_USER=eddy-scram
SCRAM_PASSWORD=eddy-scram-secret
PLAIN_USER=eddy-plain
PLAIN_PASSWORD=eddy-plain-secret

# make_tls: a CA and a server certificate for 127.0.0.1 signed by it, made
# once into $TLS_DIR: ca.pem is what clients trust (EDDY_KAFKA_CA), server.pem
# the broker's key and certificate chain (a PEM keystore).
make_tls() {
  [[ -s $TLS_DIR/ca.pem && -s $TLS_DIR/server.pem ]] && return 0
  command -v openssl >/dev/null || die "openssl not found: it makes the SASL_SSL listener's certificates (Debian: apt-get install openssl)"
  say "making a CA and a server certificate in $TLS_DIR (once)"
  local tmp="$TLS_DIR.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! (
    cd "$tmp" &&
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=eddy test CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout ca.key -out ca.pem &&
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$HOST" -keyout server.key -out server.csr &&
      printf 'subjectAltName=IP:%s,DNS:localhost\nextendedKeyUsage=serverAuth\n' "$HOST" >server.ext &&
      openssl x509 -req -days 3650 -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -extfile server.ext -out server.crt &&
      cat server.key server.crt ca.pem >server.pem
  ) >"$DIR/tls.log" 2>&1; then
    show_logs "$DIR/tls.log"
    die "openssl could not make the certificates"
  fi
  rm -rf "$TLS_DIR"
  mv "$tmp" "$TLS_DIR"
}

# secure_check: the SASL_SSL listener takes both logins over TLS verified
# with our CA, and a record produced and read back there.
secure_check() {
  "$CHECK" kafka "$HOST:$SECURE_PORT" "tls-ca=$TLS_DIR/ca.pem" sasl=scram-sha-512 "user=$SCRAM_USER" "password=$SCRAM_PASSWORD" &&
    "$CHECK" kafka "$HOST:$SECURE_PORT" "tls-ca=$TLS_DIR/ca.pem" sasl=plain "user=$PLAIN_USER" "password=$PLAIN_PASSWORD"
}

# add_scram_user: creates (or resets) the SCRAM-SHA-512 user with Kafka's own
# ConfigCommand, through the plaintext listener; KRaft keeps it in the
# cluster's metadata.
add_scram_user() {
  say "creating the SCRAM-SHA-512 user $SCRAM_USER"
  "$(java_bin)" -Dkafka.logs.dir="$DIR/tools" -Dlog4j2.configurationFile="$DIR/log4j2.yaml" -cp "$LIBS/*" \
    org.apache.kafka.tools.ConfigCommand --bootstrap-server "$HOST:$PORT" --alter --entity-type users \
    --entity-name "$SCRAM_USER" --add-config "SCRAM-SHA-512=[iterations=8192,password=$SCRAM_PASSWORD]" >>"$OUT" 2>&1
}

# secure_up PID STARTED: the running broker PID answers on its SASL_SSL
# listener. The SCRAM user is created when the check fails: at the first
# start, and on a data directory formatted before the listener existed. When
# it still fails, a broker this run STARTED (1) is stopped; one found running
# (0) is left alone.
secure_up() {
  local pid=$1 started=$2 rc=0
  if ! owns_port "$pid" "$SECURE_PORT"; then
    rc=1
    LAST_CHECK="no SASL_SSL listener on $HOST:$SECURE_PORT (started by an older services/kafka.sh? restart it: just kafka-down && just kafka-up)"
  elif secure_check >/dev/null 2>&1; then
    return 0
  elif ! add_scram_user; then
    rc=1
    LAST_CHECK="kafka-configs could not create the SCRAM user $SCRAM_USER (see $OUT and $DIR/tools/kafka.log)"
  else
    wait_ready 60 "$pid" secure_check || rc=$?
  fi
  ((rc == 0)) && return 0
  ((started)) && start_failed Kafka "$pid" "$rc" 30 "take TLS and SASL logins on $HOST:$SECURE_PORT"
  show_logs "$OUT"
  die "Kafka (pid $pid) does not take TLS and SASL logins on $HOST:$SECURE_PORT: $LAST_CHECK"
}

up() {
  mkdir -p "$DIR"
  build_check
  if already_up EDDY_KAFKA_BROKERS "" "$CHECK" kafka "$HOST:$PORT"; then
    secure_up "$(recorded_pid "$PIDFILE" "$MARKER")" 0
    return 0
  fi

  local java
  java=$(java_bin)
  (($(java_major "$java") >= 17)) || die "$java is older than 17; Kafka 4 needs Java 17 or newer (set JAVA_HOME)"
  fetch_jars "$ROOT/services/kafka/pom.xml" "$LIBS"

  port_open "$HOST" "$SECURE_PORT" &&
    die "something else listens on $HOST:$SECURE_PORT, the SASL_SSL port: stop it, or set EDDY_KAFKA_SECURE_PORT"
  make_tls
  sed -e "s#@DIR@#$DIR#g" -e "s#@PORT@#$PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
    -e "s#@SECURE_PORT@#$SECURE_PORT#g" -e "s#@PLAIN_USER@#$PLAIN_USER#g" -e "s#@PLAIN_PASSWORD@#$PLAIN_PASSWORD#g" \
    "$ROOT/services/kafka/server.properties" >"$CONF"
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
  secure_up "$pid" 1
  say "up (pid $pid) on $HOST:$PORT and SASL_SSL $HOST:$SECURE_PORT, produce/consume checked; log: $LOG"
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
