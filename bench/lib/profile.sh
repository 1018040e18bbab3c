# shellcheck shell=bash
# `bench/run --perf CASES`: where the proxy under test spends its time. For each case,
# under the same wrk load as the measured runs:
#   1. `perf stat` counts syscalls (all; futex = cross-thread wakeups; epoll_wait) and
#      context switches per request (software events and
#      tracepoints: this VM has no hardware counters), so Gatehouse and nginx can be
#      compared on the work the kernel does for them;
#   2. `perf record` samples the CPU (cpu-clock, DWARF call graphs) and prints the top
#      entries by self time, by shared object, and the Gatehouse-only symbols.
# Everything is written to $RUN_DIR/perf-<case>.* (the directory is kept).

# perf_table FILE LIMIT [user]: the first LIMIT perf report lines (user-space symbols only
# with "user"), without comments, blanks and trailing padding. One awk, no `| head`:
# under pipefail a reader that stops early would fail the pipeline.
perf_table() {
  awk -v max="$2" -v user="${3:-}" '/^#/ || /^[ \t]*$/ { next }
    user != "" && index($0, "[.]") == 0 { next }
    n < max { sub(/[ -]*$/, ""); print substr($0, 1, 150); n++ }' "$1"
}

profile_case() {
  local c=$1 proc=${CASE_PROC[$1]} pids data="$RUN_DIR/perf-$1.data"
  [ -n "$proc" ] || die "--perf: case $c has no proxy process to profile"
  # Every process of the tree (nginx works in its workers, not the master).
  pids=$(proc_tree "$(pid_of "$proc")" | paste -sd, -)

  log "perf stat: case $c (pids $pids), ${DURATION}s"
  perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,context-switches,cpu-migrations,task-clock \
    -p "$pids" -o "$RUN_DIR/perf-$c.stat.csv" -- sleep "$((DURATION + 1))" \
    >"$RUN_DIR/perf-$c.stat.log" 2>&1 &
  local stat_pid=$!
  sleep 0.5
  run_wrk "$c" "$DURATION" "$RUN_DIR/perf-stat-wrk-$c.txt"
  wait "$stat_pid" || die "perf stat failed: $(cat "$RUN_DIR/perf-$c.stat.log")"
  local requests
  requests=$(report_value "$RUN_DIR/perf-stat-wrk-$c.txt" requests)
  {
    echo "---- perf stat, case $c: per request ($requests requests in ${DURATION}s)"
    # CSV fields: value, unit, event, ...; task-clock is in msec.
    awk -F, -v n="$requests" '$1 ~ /^[0-9.]+$/ {
        if ($2 == "msec") printf "    %-28s %10.2f µs CPU per request\n", $3, $1 * 1000 / n
        else printf "    %-28s %10.2f per request\n", $3, $1 / n
      }' "$RUN_DIR/perf-$c.stat.csv"
  } | tee "$RUN_DIR/perf-$c.stat.txt" >&2

  log "perf record: case $c, ${DURATION}s"
  perf record -q -e cpu-clock -F 1999 -g --call-graph dwarf,16384 -p "$pids" -o "$data" \
    -- sleep "$((DURATION + 1))" >"$RUN_DIR/perf-$c.record.log" 2>&1 &
  local perf_pid=$!
  sleep 0.5
  run_wrk "$c" "$DURATION" "$RUN_DIR/perf-wrk-$c.txt"
  wait "$perf_pid" || die "perf record failed: $(cat "$RUN_DIR/perf-$c.record.log")"
  perf report -i "$data" --no-children --sort symbol --stdio -g none --percent-limit 0.3 \
    >"$RUN_DIR/perf-$c.flat.txt" 2>/dev/null
  perf report -i "$data" --no-children --sort dso --stdio -g none \
    >"$RUN_DIR/perf-$c.dso.txt" 2>/dev/null
  perf report -i "$data" --children --sort symbol --stdio -g none --percent-limit 1 \
    >"$RUN_DIR/perf-$c.children.txt" 2>/dev/null
  {
    echo "---- perf record, case $c: by shared object"
    perf_table "$RUN_DIR/perf-$c.dso.txt" 8
    echo "---- perf record, case $c: self time by symbol, top 30 (full: $RUN_DIR/perf-$c.flat.txt)"
    perf_table "$RUN_DIR/perf-$c.flat.txt" 30
    echo "---- perf record, case $c: user-space symbols only, top 30"
    perf_table "$RUN_DIR/perf-$c.flat.txt" 30 user
  } | tee "$RUN_DIR/perf-$c.summary.txt" >&2
}
