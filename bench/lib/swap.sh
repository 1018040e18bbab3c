# shellcheck shell=bash
# Case d100k of bench/run, after the rounds: snapshot swaps of $BIG_ROUTES routes under
# full load (issue 15, scale). For each swap mode (SWAP_MODES), wrk loads the
# token-checked route of the case's proxy while the snapshot file is replaced (write a
# temp file, rename over) $SWAP_COUNT times, alternating between the original snapshot
# and that mode's changed one:
#   few-upstreams  1 % of the filler routes point at another upstream (an Endpoints
#                  update): routes, ids and match fields unchanged
#   few-routes     1 % of the filler routes are renamed (id, path, host): the routing
#                  table must be rebuilt
#   all            every filler route is renamed (the figure measured before issue 15's
#                  incremental compile; nothing can be taken over)
# The proxy polls the file every $SWAP_POLL_MS ms (`--config-poll-ms`) and logs, at
# info, how long reading + parsing took (`read_ms`, file source) and how long compiling
# took (`compile_ms`, the same figure as `gatehouse_proxy_config_compile_seconds`,
# with what was taken over from the previous config) and, at debug, the time of each
# compile phase. Any non-2xx answer or socket error during the run fails the bench.

# Modes, in the order run (--swap-modes); each starts from the original snapshot.
SWAP_MODES=(few-upstreams few-routes all)
declare -A GH_BIG_ALT

# swap_mode_env MODE CMD...: run CMD with the snapshot generator's settings for MODE.
swap_mode_env() {
  local mode=$1
  shift
  case "$mode" in
    few-upstreams) SNAPSHOT_VARIANT=u SNAPSHOT_CHANGE_EVERY=100 SNAPSHOT_CHANGE=upstream "$@" ;;
    few-routes) SNAPSHOT_VARIANT=r SNAPSHOT_CHANGE_EVERY=100 SNAPSHOT_CHANGE=ids "$@" ;;
    all) SNAPSHOT_VARIANT=b SNAPSHOT_CHANGE_EVERY=1 SNAPSHOT_CHANGE=ids "$@" ;;
    *) die "unknown swap mode: $mode (few-upstreams, few-routes, all)" ;;
  esac
}

SWAP_POLL_MS=100
# Seconds between two swaps: long enough for a 100k-route read and compile on a busy
# 2-core machine, so each swap is measured alone.
SWAP_GAP=${SWAP_GAP:-3}

# strip_ansi FILE: the log without colour codes (tracing colours its fields).
strip_ansi() { sed -e 's/\x1b\[[0-9;]*m//g' "$1"; }

# log_field FILE MESSAGE FIELD: FIELD's values on the log lines saying MESSAGE, in order.
log_field() {
  strip_ansi "$1" | awk -v msg="$2" -v f="$3" 'index($0, msg) {
    for (i = 1; i <= NF; i++) if (index($i, f "=") == 1) print substr($i, length(f) + 2) }'
}

# replace_file FROM FILE: rename a copy of FROM over FILE (what a ConfigMap update does).
replace_file() {
  cp "$1" "$2.tmp"
  mv -f "$2.tmp" "$2"
}

# compiles_logged FILE: how many configs the proxy has compiled since it started.
compiles_logged() { log_field "$1" "Configuration loaded" compile_ms | wc -l; }

# wait_compiles FILE N: wait up to 60 s (a debug build is slow) until N are logged.
wait_compiles() {
  local i
  for i in $(seq 1 600); do
    [ "$(compiles_logged "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

# median_of: median of the numbers on stdin (empty without any).
median_of() { sort -n | awk 'NF { v[++n] = $1 } END { if (n) printf "%.1f", v[int((n + 1) / 2)] }'; }

# swap_case CASE: runs every mode of SWAP_MODES; fills SWAP_*[mode] for the results and
# FAILURES on errors.
declare -A SWAP_SEEN SWAP_COMPILE_MS SWAP_COMPILE_MED SWAP_CPU_MS SWAP_READ_MS SWAP_PHASES SWAP_REUSED \
  SWAP_REQUESTS SWAP_P99 SWAP_MAX SWAP_STATUS SWAP_SOCK SWAP_TIMEOUTS SWAP_RSS
swap_case() {
  local c=$1 proc=${CASE_PROC[$1]} file=${GH_SNAPSHOT[${CASE_PROC[$1]}]}
  local log_file="$RUN_DIR/$proc.log"
  local secs=$(((SWAP_COUNT + 1) * SWAP_GAP)) before i mode at_orig=1
  SWAP_START_MS=$(log_field "$log_file" "Configuration compiled" compile_ms | awk 'NR == 1 { printf "%.1f", $1 }')
  SWAP_START_CPU=$(log_field "$log_file" "Configuration compiled" compile_cpu_ms | awk 'NR == 1 && $1 >= 0 { printf ", CPU %.1f ms", $1 }')
  for mode in "${SWAP_MODES[@]}"; do
    local report="$RUN_DIR/swap-$c-$mode.txt"
    if [ "$at_orig" = 0 ]; then
      # Back to the original first (not measured), so each mode swaps against it.
      before=$(compiles_logged "$log_file")
      replace_file "$GH_BIG_ORIG" "$file"
      wait_compiles "$log_file" $((before + 1)) || FAILURES+=("case $c swap run: the reset to the original snapshot was not compiled")
      at_orig=1
    fi
    log "swap under load ($mode): $SWAP_COUNT swaps of $(thousands "$BIG_ROUTES") routes during ${secs}s of wrk on case $c"
    before=$(compiles_logged "$log_file")
    run_wrk "$c" "$secs" "$report" &
    local wrk_pid=$!
    for i in $(seq 1 "$SWAP_COUNT"); do
      sleep "$SWAP_GAP"
      # Alternate: odd swaps install the changed snapshot, even swaps the original.
      if [ $((i % 2)) = 1 ]; then
        replace_file "${GH_BIG_ALT[$mode]}" "$file"
        at_orig=0
      else
        replace_file "$GH_BIG_ORIG" "$file"
        at_orig=1
      fi
    done
    wait "$wrk_pid" || die "case $c: wrk failed during the swap run"
    check_alive "$proc"
    # A slow (debug) build may still be compiling the last swap.
    wait_compiles "$log_file" $((before + SWAP_COUNT)) || true

    local compiles reads phase
    compiles=$(log_field "$log_file" "Configuration loaded" compile_ms | tail -n +$((before + 1)))
    reads=$(log_field "$log_file" "Snapshot file reloaded" read_ms | tail -n "$SWAP_COUNT")
    SWAP_SEEN[$mode]=$(printf '%s\n' "$compiles" | grep -c . || true)
    SWAP_COMPILE_MS[$mode]=$(printf '%s\n' "$compiles" | awk 'NF { printf "%s%.1f", s, $1; s = ", " }')
    SWAP_COMPILE_MED[$mode]=$(printf '%s\n' "$compiles" | median_of)
    # CPU time of the compiling thread (absent before it was logged; -1 where unknown).
    SWAP_CPU_MS[$mode]=$(log_field "$log_file" "Configuration loaded" compile_cpu_ms | tail -n +$((before + 1)) |
      awk 'NF && $1 >= 0 { printf "%s%.1f", s, $1; s = ", " }')
    SWAP_READ_MS[$mode]=$(printf '%s\n' "$reads" | awk 'NF { printf "%s%.0f", s, $1; s = ", " }')
    # What each swap took over from the previous config.
    SWAP_REUSED[$mode]=$(paste -d' ' \
      <(log_field "$log_file" "Configuration loaded" router_reused | tail -n +$((before + 1))) \
      <(log_field "$log_file" "Configuration loaded" upstreams_reused | tail -n +$((before + 1))) |
      awk 'NF == 2 { printf "%s%s", s, ($1 == "true" ? "router + " : "") $2 " upstreams"; s = "; " }')
    # Median of each compile phase over the swaps (the debug line "Compile phases").
    SWAP_PHASES[$mode]=""
    for phase in router catalog upstreams rules certs; do
      SWAP_PHASES[$mode]+="$phase $(log_field "$log_file" "Compile phases" "${phase}_ms" |
        tail -n "$SWAP_COUNT" | median_of) ms, "
    done
    SWAP_PHASES[$mode]=${SWAP_PHASES[$mode]%, }
    SWAP_REQUESTS[$mode]=$(report_value "$report" requests)
    SWAP_P99[$mode]=$(awk -v v="$(report_value "$report" p99_us)" 'BEGIN { printf "%.3f", v / 1000 }')
    SWAP_MAX[$mode]=$(awk -v v="$(report_value "$report" lat_max_us)" 'BEGIN { printf "%.1f", v / 1000 }')
    read -r "SWAP_STATUS[$mode]" "SWAP_SOCK[$mode]" "SWAP_TIMEOUTS[$mode]" < <(errors_of "$report")
    SWAP_RSS[$mode]=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$(pid_of "$proc")/status")
    printf '    swap  %s %s: %s/%s swaps compiled (ms: %s; read+parse ms: %s), %s requests, non-2xx %s, socket errors %s, timeouts %s, p99 %s ms, max %s ms, RSS %s MiB\n' \
      "$c" "$mode" "${SWAP_SEEN[$mode]}" "$SWAP_COUNT" "${SWAP_COMPILE_MS[$mode]}" "${SWAP_READ_MS[$mode]}" \
      "${SWAP_REQUESTS[$mode]}" "${SWAP_STATUS[$mode]}" "${SWAP_SOCK[$mode]}" "${SWAP_TIMEOUTS[$mode]}" \
      "${SWAP_P99[$mode]}" "${SWAP_MAX[$mode]}" "${SWAP_RSS[$mode]}" >&2
    printf '    swap  %s %s: compile CPU ms: %s; taken over: %s; compile phases (median over swaps): %s\n' \
      "$c" "$mode" "${SWAP_CPU_MS[$mode]:-—}" "${SWAP_REUSED[$mode]}" "${SWAP_PHASES[$mode]}" >&2
    if [ "${SWAP_STATUS[$mode]}" != 0 ] || [ "${SWAP_SOCK[$mode]}" != 0 ]; then
      FAILURES+=("case $c swap run ($mode): ${SWAP_STATUS[$mode]} non-2xx, ${SWAP_SOCK[$mode]} socket errors")
    fi
    if [ "${SWAP_SEEN[$mode]}" != "$SWAP_COUNT" ]; then
      FAILURES+=("case $c swap run ($mode): ${SWAP_SEEN[$mode]} of $SWAP_COUNT swaps compiled (log: $log_file)")
    fi
  done
}

# swap_results: the Markdown section of RESULTS.md.
swap_results() {
  local mode
  echo "## Snapshot swap under load (d100k)"
  echo
  echo "$(thousands "$BIG_ROUTES") routes (three shapes, half OAuth2-protected, $(thousands $((BIG_ROUTES / 10))) consumers and clients), served by \`gatehouse proxy --config-file\` polling every ${SWAP_POLL_MS} ms; for each mode, wrk (same settings) loads the token-checked route for $(((SWAP_COUNT + 1) * SWAP_GAP)) s while the file is replaced $SWAP_COUNT times (rename over it, every ${SWAP_GAP} s), alternating between the original snapshot and the mode's changed one. Modes: **few-upstreams**, 1 % of the filler routes point at another upstream (an Endpoints update; match fields unchanged); **few-routes**, 1 % of the filler routes renamed (id, path, host: the routing table is rebuilt); **all**, every filler route renamed (nothing can be taken over). Compile time is the proxy's own wall-clock figure (\`gatehouse_proxy_config_compile_seconds\`: routing table, catalog, upstreams, scope rules, certificates, taking over from the previous config what is unchanged), on the proxy's config thread; compile CPU is the CPU time of that thread during the compile (on a loaded machine the wall clock also counts waiting for a core); read + parse is the file source reading, parsing and validating the JSON before that. RSS is the proxy's VmRSS after each mode's swaps (modes run in the order listed, on one process)."
  echo
  echo "Compile at start-up: ${SWAP_START_MS:-—} ms${SWAP_START_CPU:-}."
  echo
  echo "| mode | compile per swap ms | median | compile CPU per swap ms | read + parse per swap ms | swaps seen | requests | non-2xx | socket errors | timeouts | p99 ms | max ms | RSS after MiB |"
  echo "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for mode in "${SWAP_MODES[@]}"; do
    echo "| $mode | ${SWAP_COMPILE_MS[$mode]:-—} | ${SWAP_COMPILE_MED[$mode]:-—} | ${SWAP_CPU_MS[$mode]:-—} | ${SWAP_READ_MS[$mode]:-—} | ${SWAP_SEEN[$mode]:-0}/$SWAP_COUNT | ${SWAP_REQUESTS[$mode]:-—} | ${SWAP_STATUS[$mode]:-—} | ${SWAP_SOCK[$mode]:-—} | ${SWAP_TIMEOUTS[$mode]:-—} | ${SWAP_P99[$mode]:-—} | ${SWAP_MAX[$mode]:-—} | ${SWAP_RSS[$mode]:-—} |"
  done
  echo
  for mode in "${SWAP_MODES[@]}"; do
    echo "- $mode: taken over per swap: ${SWAP_REUSED[$mode]:-—}; compile phases, median over the swaps: ${SWAP_PHASES[$mode]:-—}."
  done
}
