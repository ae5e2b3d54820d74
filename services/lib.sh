# shellcheck shell=bash
# shellcheck disable=SC2034 # LAST_CHECK and CHECK are read by the scripts that source this
# Shared by services/kafka.sh, cassandra.sh and mysql.sh: where things live,
# the pid each `up` records, waiting for a server to really answer, and
# failing with the last lines of its log. Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.cache"
# A checkout whose .cache links to another's shares its servers: name the
# files by their real path, as the running servers' command lines do.
if [[ -d $CACHE ]]; then CACHE=$(cd -P "$CACHE" && pwd); fi

say() { printf '%s: %s\n' "$SERVICE" "$*"; }
die() { printf '%s: %s\n' "$SERVICE" "$*" >&2; exit 1; }

# alive PID: the process exists and is not a zombie.
alive() {
  local pid=$1 state
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

# recorded_pid PIDFILE MARKER: prints the pid recorded in PIDFILE when that
# process is alive and its command line contains MARKER (so a reused pid is
# never taken for ours).
recorded_pid() {
  local pidfile=$1 marker=$2 pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker" || return 1
  printf '%s\n' "$pid"
}

# port_open HOST PORT: something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# owns_port PID PORT: PID holds the socket listening on TCP PORT. A readiness
# check alone could be answered by another server that took the port first
# (say, one started from another checkout) while ours failed to bind.
owns_port() {
  local pid=$1 hex inode
  hex=$(printf '%04X' "$2")
  # shellcheck disable=SC2013 # one inode number a line
  for inode in $(awk -v p=":$hex\$" '$4 == "0A" && $2 ~ p {print $10}' /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
    if find "/proc/$pid/fd" -maxdepth 1 -lname "socket:\[$inode\]" 2>/dev/null | grep -q .; then
      return 0
    fi
  done
  return 1
}

# ready PID PORT CMD...: PID listens on PORT and CMD succeeds against it.
ready() {
  local pid=$1 port=$2
  shift 2
  if ! owns_port "$pid" "$port"; then
    echo "pid $pid does not listen on port $port (yet)"
    return 1
  fi
  "$@"
}

# show_logs FILE...: the last 40 lines of each log that exists, on stderr.
show_logs() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf -- '----- last lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

# rotate_logs FILE...: keeps the previous run's log as FILE.1, so that the
# log a failed start prints is this run's own.
rotate_logs() {
  local f
  for f in "$@"; do
    [[ -e $f ]] && mv -f "$f" "$f.1"
  done
  return 0
}

# wait_ready SECONDS PID CMD...: runs CMD once a second until it succeeds.
# Returns 1 when time runs out and 2 when PID exits first; the output of the
# last failed CMD is left in LAST_CHECK.
LAST_CHECK=
wait_ready() {
  local timeout=$1 pid=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  while :; do
    if LAST_CHECK=$("$@" 2>&1); then
      return 0
    fi
    alive "$pid" || return 2
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# already_up ENVVAR HINT CHECK...: returns 0 (and says so) when the server
# this script started runs and answers CHECK; 1 when it doesn't run and its
# port is free. It dies when it runs but doesn't answer, or when something
# else holds the port (HINT, if any, names a likely culprit; ENVVAR is how to
# use that server instead).
already_up() {
  local env=$1 hint=$2 pid
  shift 2
  if pid=$(recorded_pid "$PIDFILE" "$MARKER"); then
    if ! wait_ready "$START_TIMEOUT" "$pid" ready "$pid" "$PORT" "$@"; then
      show_logs "$LOG" "$OUT"
      die "pid $pid is running but does not answer on $HOST:$PORT: $LAST_CHECK"
    fi
    say "already running (pid $pid) on $HOST:$PORT; log: $LOG"
    return 0
  fi
  if port_open "$HOST" "$PORT"; then
    die "something else listens on $HOST:$PORT (not the pid in $PIDFILE$hint): stop it, or point $env at it instead (docs/services.md)"
  fi
  return 1
}

# start_failed NAME PID RC SECONDS WHAT: a start that wait_ready (or a
# setup step after it) ended with RC: shows the logs, stops PID (waiting up
# to SECONDS) unless it exited already, forgets it, and dies saying NAME did
# not WHAT in time.
start_failed() {
  local name=$1 pid=$2 rc=$3 secs=$4 what=$5
  show_logs "$LOG" "$OUT"
  if ((rc == 2)); then
    rm -f "$PIDFILE"
    die "$name (pid $pid) exited while starting; last check: $LAST_CHECK"
  fi
  stop_pid "$pid" "$secs"
  rm -f "$PIDFILE"
  die "$name did not $what within ${START_TIMEOUT}s (stopped pid $pid); last check: $LAST_CHECK"
}

# stop_pid PID SECONDS: SIGTERM, wait up to SECONDS for the exit, then SIGKILL.
stop_pid() {
  local pid=$1 timeout=$2
  local deadline=$((SECONDS + timeout))
  kill -TERM "$pid" 2>/dev/null || return 0
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      say "pid $pid still running after ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
      alive "$pid" && die "pid $pid did not exit after SIGKILL"
      return 0
    fi
    sleep 0.2
  done
}

# down PIDFILE MARKER SECONDS: stops only the process that `up` recorded.
down() {
  local pidfile=$1 marker=$2 timeout=$3 pid
  if ! pid=$(recorded_pid "$pidfile" "$marker"); then
    say "not running (no live pid recorded in $pidfile)"
    rm -f "$pidfile"
    return 0
  fi
  say "stopping pid $pid"
  stop_pid "$pid" "$timeout"
  rm -f "$pidfile"
  say "stopped"
}

# status: whether the process `up` recorded in $PIDFILE runs (exit 1 if not).
# PIDFILE, MARKER, HOST, PORT and LOG are set by the service's script.
# shellcheck disable=SC2153
status() {
  local pid
  if pid=$(recorded_pid "$PIDFILE" "$MARKER"); then
    say "running (pid $pid) on $HOST:$PORT; log: $LOG"
  else
    say "not running"
    return 1
  fi
}

# fetch POM: the jars alone (into $LIBS), so CI can time the downloads
# apart from the start.
fetch() {
  mkdir -p "$DIR"
  fetch_jars "$1" "$LIBS"
  build_check
  say "jars in $LIBS"
}

# java_bin: the java to run, JAVA_HOME's when set.
java_bin() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  else
    command -v java || die "java not found: install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless)"
  fi
}

# java_major JAVA: the feature release of that java, e.g. 17.
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 |
    awk -F' = ' '/java.specification.version/ {print $2}' | cut -d. -f1
}

# fetch_jars POM DIR: copies POM's runtime dependencies into DIR with Maven,
# once: DIR keeps the POM's checksum and is reused while the POM is unchanged.
fetch_jars() {
  local pom=$1 dir=$2 sum
  sum=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f $dir/.pom.sha256 && $(<"$dir/.pom.sha256") == "$sum" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: install Maven (Debian: apt-get install maven) to fetch the jars"
  say "fetching jars from Maven Central into $dir (once; later runs reuse them)"
  rm -rf "$dir.tmp"
  if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$dir.tmp" >"$dir.mvn.log" 2>&1; then
    show_logs "$dir.mvn.log"
    die "mvn could not fetch the jars of $pom"
  fi
  printf '%s\n' "$sum" >"$dir.tmp/.pom.sha256"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
}

# build_check: the Go program in services/check that asks a server for real
# work; built into the cache (the Go build cache makes rebuilds quick).
build_check() {
  command -v go >/dev/null || die "go not found: the readiness check is a Go program (services/check)"
  mkdir -p "$CACHE/bin"
  (cd "$ROOT" && go build -o "$CACHE/bin/servicecheck" ./services/check) ||
    die "could not build services/check"
  CHECK="$CACHE/bin/servicecheck"
}
