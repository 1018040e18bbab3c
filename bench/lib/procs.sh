# shellcheck shell=bash
# Process plumbing for bench/run: loopback ports chosen at run time, servers started in
# the background and always stopped on exit, readiness waits, and CPU / peak-RSS
# readings from /proc. Sourced by bench/run; expects $RUN_DIR to be set.

# Every pid this run started, stopped by cleanup_processes (EXIT trap), newest first.
STARTED_PIDS=()
# Ports handed out so far, so two servers of one run never get the same port.
USED_PORTS=" "

# Ports are drawn below the kernel's ephemeral range: a port in that range can be the
# local end of an outgoing connection (wrk, nginx or Redis clients) that nothing listens
# on, so the probe below sees it free and the server's bind then fails.
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPHEMERAL_LOW" -gt 11000 ] 2>/dev/null || EPHEMERAL_LOW=32768

# alloc_port VAR: pick a free 127.0.0.1 port and store it in VAR.
alloc_port() {
  local -n _port_var=$1
  local p tries=0
  while :; do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % (EPHEMERAL_LOW - 10000)))
    tries=$((tries + 1))
    if [ "$tries" -gt 1000 ]; then
      die "no free loopback port found"
    fi
    case "$USED_PORTS" in *" $p "*) continue ;; esac
    # A successful connect means someone listens there already.
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      continue
    fi
    USED_PORTS+="$p "
    _port_var=$p
    return 0
  done
}

# spawn NAME CMD...: start CMD in the background with its output in $RUN_DIR/NAME.log,
# remember its pid (for cleanup and /proc readings) in PID_<NAME>.
spawn() {
  local name=$1
  shift
  "$@" >"$RUN_DIR/$name.log" 2>&1 &
  local pid=$!
  STARTED_PIDS=("$pid" "${STARTED_PIDS[@]}")
  printf -v "PID_${name//-/_}" '%s' "$pid"
}

# pid_of NAME: the pid spawn recorded for NAME.
pid_of() {
  local var="PID_${1//-/_}"
  printf '%s' "${!var:-}"
}

# cleanup_processes: stop everything spawn started (TERM, then KILL after a grace
# period). Safe to call more than once.
cleanup_processes() {
  local pid alive=()
  for pid in "${STARTED_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      alive+=("$pid")
    fi
  done
  local i
  for i in $(seq 1 50); do
    local still=()
    for pid in "${alive[@]}"; do
      kill -0 "$pid" 2>/dev/null && still+=("$pid")
    done
    alive=("${still[@]}")
    [ "${#alive[@]}" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${alive[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  STARTED_PIDS=()
}

# check_alive NAME: fail with the tail of its log if the process has exited.
check_alive() {
  local name=$1 pid
  pid=$(pid_of "$name")
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "---- $RUN_DIR/$name.log (tail)" >&2
    tail -n 30 "$RUN_DIR/$name.log" >&2 || true
    die "$name exited unexpectedly"
  fi
}

# http_status URL [curl args...]: print the status code (000 when unreachable).
http_status() {
  local url=$1
  shift
  curl -ks -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url" || true
}

# wait_listening NAME PORT [SECONDS]: wait until PORT accepts connections (default 10 s).
wait_listening() {
  local name=$1 port=$2 secs=${3:-10} i
  for i in $(seq 1 $((secs * 20))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    check_alive "$name"
    sleep 0.05
  done
  die "$name did not listen on 127.0.0.1:$port within $secs s (log: $RUN_DIR/$name.log)"
}

# proc_tree PID: PID and its direct children (nginx master + workers).
proc_tree() {
  echo "$1"
  pgrep -P "$1" 2>/dev/null || true
}

# cpu_ticks NAME: user+system CPU clock ticks used so far by NAME's process tree.
cpu_ticks() {
  local pid total=0 stat rest
  for pid in $(proc_tree "$(pid_of "$1")"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    # The command name (field 2) may contain spaces: cut after its closing paren.
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    # After the paren, utime and stime are fields 12 and 13 (stat fields 14, 15).
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# peak_rss_kib NAME: sum of VmHWM (peak resident set) over NAME's process tree.
peak_rss_kib() {
  local pid total=0 kib
  for pid in $(proc_tree "$(pid_of "$1")"); do
    kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}
