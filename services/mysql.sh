#!/usr/bin/env bash
# services/mysql.sh up|down|status|install: a MariaDB server from Debian's packages,
# run by hand (not the system service) with its own data directory under
# .cache/mysql, on 127.0.0.1:3306, database `eddy`, user eddy/eddy.
# See docs/services.md.
set -euo pipefail
SERVICE=mysql
# shellcheck source=services/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST=127.0.0.1
PORT=3306
DIR="$CACHE/mysql"
DATA="$DIR/data"
SOCK="$DIR/mysqld.sock"
if ((${#SOCK} > 100)); then
  # a unix socket path has room for 107 bytes: deep checkouts use /tmp
  SOCK="${TMPDIR:-/tmp}/eddy-mysqld-$(printf '%s' "$DIR" | sha256sum | cut -c1-12).sock"
fi
PIDFILE="$DIR/mysqld.pid"
LOG="$DIR/mysqld.log"
OUT="$DIR/mysqld.out"
MARKER="--datadir=$DATA"
START_TIMEOUT=${EDDY_MYSQL_START_TIMEOUT:-90}

# first_cmd NAME...: the first of these commands on PATH (or in /usr/sbin).
first_cmd() {
  local c
  for c in "$@"; do
    if command -v "$c" >/dev/null 2>&1; then
      command -v "$c"
      return 0
    fi
    if [[ -x /usr/sbin/$c ]]; then
      printf '%s\n' "/usr/sbin/$c"
      return 0
    fi
  done
  return 1
}

# install: mariadb-server from Debian's packages when no server is on the
# machine. Debian's package starts the system service after installing; a
# policy-rc.d that says no (only while installing, only when none exists)
# keeps that one from taking port 3306.
install() {
  if first_cmd mariadbd mysqld >/dev/null; then
    return 0
  fi
  ((EUID == 0)) || die "no mariadbd on this machine: run 'sudo apt-get install mariadb-server' (this script installs it only as root)"
  command -v apt-get >/dev/null || die "no mariadbd and no apt-get: install MariaDB (or MySQL) yourself, or point EDDY_MYSQL_DSN at a server"
  local policy=/usr/sbin/policy-rc.d added=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    added=1
  fi
  say "installing mariadb-server from Debian's packages (once)"
  local rc=0
  {
    apt-get update -q >"$DIR/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        mariadb-server mariadb-client >>"$DIR/apt.log" 2>&1
  } || rc=$?
  [[ -n $added ]] && rm -f "$policy"
  if ((rc != 0)); then
    show_logs "$DIR/apt.log"
    die "apt-get install mariadb-server failed"
  fi
}

# client ARGS...: the mariadb client without reading any option file.
client() { "$CLIENT" --no-defaults "$@"; }

# tcp_check: what tests do: user eddy, password eddy, over TCP.
tcp_check() {
  client --protocol=tcp -h "$HOST" -P "$PORT" -u eddy -peddy -D eddy -N -e 'SELECT VERSION()'
}

# socket_check: the server answers its administrator on the socket.
socket_check() { client -S "$SOCK" -u "$(id -un)" -N -e 'SELECT 1'; }

up() {
  mkdir -p "$DIR"
  install
  local server
  server=$(first_cmd mariadbd mysqld) || die "no mariadbd or mysqld found"
  CLIENT=$(first_cmd mariadb mysql) || die "no mariadb or mysql client found"

  already_up EDDY_MYSQL_DSN "; the system's mariadb service?" tcp_check && return 0

  rotate_logs "$LOG" "$OUT"
  if [[ ! -d $DATA/mysql ]]; then
    local installdb
    installdb=$(first_cmd mariadb-install-db mysql_install_db) || die "no mariadb-install-db found"
    say "creating a data directory in $DATA"
    rm -rf "$DATA"
    # The administrator is whoever runs this script, by socket only: no
    # password-less root on TCP.
    "$installdb" --no-defaults --datadir="$DATA" --user="$(id -un)" \
      --auth-root-authentication-method=socket --skip-test-db >>"$OUT" 2>&1 ||
      { show_logs "$OUT"; die "mariadb-install-db failed"; }
  fi

  # --no-defaults drops Debian's my.cnf, whose utf8mb4 defaults we keep:
  # MariaDB's own default is latin1.
  local asroot=()
  ((EUID == 0)) && asroot=(--user=root) # mariadbd refuses root without it
  say "starting MariaDB on $HOST:$PORT; log: $LOG"
  rm -f "$SOCK"
  nohup "$server" --no-defaults "$MARKER" --socket="$SOCK" --port="$PORT" \
    --bind-address="$HOST" --pid-file="$DIR/mariadbd.pid" --log-error="$LOG" \
    --skip-name-resolve --innodb-buffer-pool-size=128M \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci "${asroot[@]}" \
    >>"$OUT" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDFILE"

  local rc=0
  wait_ready "$START_TIMEOUT" "$pid" socket_check || rc=$?
  if ((rc == 0)); then
    client -S "$SOCK" -u "$(id -un)" -e "
      CREATE DATABASE IF NOT EXISTS eddy;
      CREATE USER IF NOT EXISTS 'eddy'@'localhost' IDENTIFIED BY 'eddy';
      CREATE USER IF NOT EXISTS 'eddy'@'127.0.0.1' IDENTIFIED BY 'eddy';
      CREATE USER IF NOT EXISTS 'eddy'@'::1' IDENTIFIED BY 'eddy';
      GRANT ALL PRIVILEGES ON *.* TO 'eddy'@'localhost';
      GRANT ALL PRIVILEGES ON *.* TO 'eddy'@'127.0.0.1';
      GRANT ALL PRIVILEGES ON *.* TO 'eddy'@'::1';" >>"$OUT" 2>&1 || rc=3
  fi
  ((rc == 0)) && { wait_ready 10 "$pid" ready "$pid" "$PORT" tcp_check || rc=$?; }
  ((rc == 0)) || start_failed MariaDB "$pid" "$rc" 30 "answer user eddy on $HOST:$PORT"
  say "up (pid $pid) on $HOST:$PORT, user eddy got an answer from $LAST_CHECK; log: $LOG"
}

case ${1:-} in
install)
  mkdir -p "$DIR"
  install
  say "server: $(first_cmd mariadbd mysqld)"
  ;;
up) up ;;
down) down "$PIDFILE" "$MARKER" 60 ;;
status) status ;;
*)
  echo "usage: $0 up|down|status|install" >&2
  exit 2
  ;;
esac
