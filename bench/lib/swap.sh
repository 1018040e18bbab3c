# shellcheck shell=bash
# Case d100k of bench/run, after the rounds: a snapshot swap of $BIG_ROUTES routes under
# full load (issue 15, scale). wrk loads the token-checked route of the case's proxy
# while the snapshot file is replaced (write a temp file, rename over) $SWAP_COUNT times,
# alternating between two snapshots that differ in every filler route. The proxy polls
# the file every $SWAP_POLL_MS ms (`--config-poll-ms`) and logs, at info, how long
# reading + parsing took (`read_ms`, file source) and how long compiling took
# (`compile_ms`, the same figure as `gatehouse_proxy_config_compile_seconds`) and, at
# debug, the time of each compile phase. Any
# non-2xx answer or socket error during the run fails the bench.

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

# swap_case CASE: fills SWAP_* for the results and FAILURES on errors.
swap_case() {
  local c=$1 proc=${CASE_PROC[$1]} file=${GH_SNAPSHOT[${CASE_PROC[$1]}]}
  local log_file="$RUN_DIR/$proc.log" report="$RUN_DIR/swap-$c.txt"
  local secs=$(((SWAP_COUNT + 1) * SWAP_GAP)) before i
  log "swap under load: $SWAP_COUNT swaps of $(thousands "$BIG_ROUTES") routes during ${secs}s of wrk on case $c"
  before=$(log_field "$log_file" "Configuration loaded" compile_ms | wc -l)
  run_wrk "$c" "$secs" "$report" &
  local wrk_pid=$!
  for i in $(seq 1 "$SWAP_COUNT"); do
    sleep "$SWAP_GAP"
    # Alternate: odd swaps install the changed snapshot, even swaps the original.
    local from=$GH_BIG_ALT
    [ $((i % 2)) = 0 ] && from=$GH_BIG_ORIG
    cp "$from" "$file.tmp"
    mv -f "$file.tmp" "$file"
  done
  wait "$wrk_pid" || die "case $c: wrk failed during the swap run"
  check_alive "$proc"
  # A slow (debug) build may still be compiling the last swap: wait for it up to 60 s.
  for i in $(seq 1 600); do
    [ "$(log_field "$log_file" "Configuration loaded" compile_ms | wc -l)" -ge $((before + SWAP_COUNT)) ] && break
    sleep 0.1
  done

  local compiles reads
  compiles=$(log_field "$log_file" "Configuration loaded" compile_ms | tail -n +$((before + 1)))
  reads=$(log_field "$log_file" "Snapshot file reloaded" read_ms | tail -n "$SWAP_COUNT")
  SWAP_SEEN=$(printf '%s\n' "$compiles" | grep -c . || true)
  SWAP_COMPILE_MS=$(printf '%s\n' "$compiles" | awk 'NF { printf "%s%.1f", s, $1; s = ", " }')
  SWAP_COMPILE_MAX=$(printf '%s\n' "$compiles" | awk 'NF && $1 > m { m = $1 } END { printf "%.1f", m }')
  SWAP_READ_MS=$(printf '%s\n' "$reads" | awk 'NF { printf "%s%.0f", s, $1; s = ", " }')
  # Median of each compile phase over the swaps (the debug line "Compile phases").
  local phase
  SWAP_PHASES=""
  for phase in router catalog upstreams rules certs; do
    SWAP_PHASES+="$phase $(log_field "$log_file" "Compile phases" "${phase}_ms" |
      tail -n "$SWAP_COUNT" | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.0f", v[int((NR + 1) / 2)] }') ms, "
  done
  SWAP_PHASES=${SWAP_PHASES%, }
  SWAP_START_MS=$(log_field "$log_file" "Configuration compiled" compile_ms | awk 'NR == 1 { printf "%.1f", $1 }')
  SWAP_REQUESTS=$(report_value "$report" requests)
  SWAP_P99=$(awk -v v="$(report_value "$report" p99_us)" 'BEGIN { printf "%.3f", v / 1000 }')
  SWAP_MAX=$(awk -v v="$(report_value "$report" lat_max_us)" 'BEGIN { printf "%.1f", v / 1000 }')
  read -r SWAP_STATUS SWAP_SOCK SWAP_TIMEOUTS < <(errors_of "$report")
  SWAP_RSS=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$(pid_of "$proc")/status")
  printf '    swap  %s: %s/%s swaps compiled (ms: %s; read+parse ms: %s), %s requests, non-2xx %s, socket errors %s, timeouts %s, p99 %s ms, max %s ms\n' \
    "$c" "$SWAP_SEEN" "$SWAP_COUNT" "$SWAP_COMPILE_MS" "$SWAP_READ_MS" "$SWAP_REQUESTS" \
    "$SWAP_STATUS" "$SWAP_SOCK" "$SWAP_TIMEOUTS" "$SWAP_P99" "$SWAP_MAX" >&2
  printf '    swap  %s: compile phases (median over swaps): %s\n' "$c" "$SWAP_PHASES" >&2
  if [ "$SWAP_STATUS" != 0 ] || [ "$SWAP_SOCK" != 0 ]; then
    FAILURES+=("case $c swap run: $SWAP_STATUS non-2xx, $SWAP_SOCK socket errors")
  fi
  if [ "$SWAP_SEEN" != "$SWAP_COUNT" ]; then
    FAILURES+=("case $c swap run: $SWAP_SEEN of $SWAP_COUNT swaps compiled (log: $log_file)")
  fi
}

# swap_results: the Markdown section of RESULTS.md.
swap_results() {
  echo "## Snapshot swap under load (d100k)"
  echo
  echo "$(thousands "$BIG_ROUTES") routes (three shapes, half OAuth2-protected, $(thousands $((BIG_ROUTES / 10))) consumers and clients), served by \`gatehouse proxy --config-file\` polling every ${SWAP_POLL_MS} ms; wrk (same settings) loads the token-checked route for $(((SWAP_COUNT + 1) * SWAP_GAP)) s while the file is replaced $SWAP_COUNT times (rename over it, every ${SWAP_GAP} s; the two snapshots differ in every filler route). Compile time is the proxy's own figure (\`gatehouse_proxy_config_compile_seconds\`: routing table, catalog, upstreams, scope rules, certificates), on tokio's blocking pool; read + parse is the file source reading, parsing and validating the JSON before that."
  echo
  echo "| routes | compile at start ms | compile per swap ms | read + parse per swap ms | swaps seen | requests | non-2xx | socket errors | timeouts | p99 ms | max ms | RSS after MiB |"
  echo "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  echo "| $(thousands "$BIG_ROUTES") | ${SWAP_START_MS:-—} | ${SWAP_COMPILE_MS:-—} | ${SWAP_READ_MS:-—} | $SWAP_SEEN/$SWAP_COUNT | $SWAP_REQUESTS | $SWAP_STATUS | $SWAP_SOCK | $SWAP_TIMEOUTS | $SWAP_P99 | $SWAP_MAX | $SWAP_RSS |"
  echo
  echo "Compile phases, median over the swaps: $SWAP_PHASES."
}
