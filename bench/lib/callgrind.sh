# shellcheck shell=bash
# `bench/run --callgrind CASES`: user-space instructions per request, counted by
# valgrind's callgrind. Unlike req/s this does not depend on what else the machine is
# doing, so it can judge a change to the proxy on a busy shared machine. For each case a
# twin of its proxy runs under callgrind with one worker (nginx: one process, no
# master), is warmed up uninstrumented, then counted while wrk sends load for
# $CALLGRIND_SECONDS seconds. Kernel work (syscalls, TCP) is not counted: see --perf.
# Notes: under valgrind the CPU has no SHA extensions, so SHA-256 runs the portable
# code (several times the instructions of the SHA-NI path used natively).

CALLGRIND_SECONDS=${CALLGRIND_SECONDS:-5}

# callgrind_table FILE: callgrind_annotate lines with crate paths shortened.
callgrind_table() {
  sed -E -e 's#/root/\.cargo/registry/src/[^/]+/##g' -e 's#/rustc/[0-9a-f]+/library/##g' \
    -e "s#$ROOT/##g" -e 's# \[[^]]*\]$##' -e 's/ +$//' "$1" | cut -c1-170
}

callgrind_case() {
  local c=$1 proc=${CASE_PROC[$1]} name="cg-$1" port out="$RUN_DIR/callgrind-$1.out"
  [ -n "$proc" ] || die "--callgrind: case $c has no proxy process"
  [ -z "${CASE_NO_TWIN[$c]:-}" ] || die "--callgrind: case $c: ${CASE_NO_TWIN[$c]}; count (b) and (d) instead"
  local vg=(valgrind --tool=callgrind --instr-atstart=no --dump-instr=no
    "--callgrind-out-file=$out")
  log "callgrind: case $c (a twin of $proc under valgrind, 1 worker)"
  if [ "$proc" = nginx-proxy ]; then
    alloc_port port
    render_nginx "$BENCH_DIR/nginx/proxy.conf.in" "$RUN_DIR/$name.conf" "$port" 1 off
    sed -i "s#nginx-proxy#$name#g" "$RUN_DIR/$name.conf"
    spawn "$name" "${vg[@]}" "$NGINX" -e "$RUN_DIR/$name.error.log" -p "$RUN_DIR" \
      -c "$RUN_DIR/$name.conf"
    wait_listening "$name" "$port" 60
  else
    # Up to 240 s to start: valgrind reads and compiles a 100,000-route snapshot slowly.
    # shellcheck disable=SC2086 # GH_FLAGS holds a word list
    GH_WRAPPER="${vg[*]}" GH_START_SECONDS=240 start_gatehouse "$name" \
      "${GH_SNAPSHOT[$proc]}" --workers 1 ${GH_FLAGS[$proc]}
    port=$(gh_port "$name")
  fi
  local url=${CASE_URL[$c]} header=${CASE_HEADER[$c]:-}
  url="http://127.0.0.1:$port/${url#http://*/}"
  if [[ "$header" == Authorization:* ]]; then
    # Tokens of an in-memory store live in one process: ask the twin for its own.
    local tok
    tok=$(fetch_token "$(token_url "$name")")
    header="Authorization: Bearer $tok"
  fi
  local saved_url=${CASE_URL[$c]} saved_header=${CASE_HEADER[$c]:-}
  CASE_URL[$c]=$url
  CASE_HEADER[$c]=$header
  verify_case "$c"
  local pid
  pid=$(pid_of "$name")
  run_wrk "$c" 2 "$RUN_DIR/callgrind-warm-$c.txt"
  callgrind_control -i on "$pid" >/dev/null 2>&1
  run_wrk "$c" "$CALLGRIND_SECONDS" "$RUN_DIR/callgrind-wrk-$c.txt"
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  CASE_URL[$c]=$saved_url
  CASE_HEADER[$c]=$saved_header

  local dump="$out.1" requests status sock total
  for _ in $(seq 1 100); do [ -s "$dump" ] && break; sleep 0.1; done
  [ -s "$dump" ] || die "callgrind wrote no dump for case $c"
  requests=$(report_value "$RUN_DIR/callgrind-wrk-$c.txt" requests)
  read -r status sock _ < <(errors_of "$RUN_DIR/callgrind-wrk-$c.txt")
  if [ "$status" != 0 ] || [ "$sock" != 0 ]; then
    FAILURES+=("case $c under callgrind: $status non-2xx, $sock socket errors")
  fi
  callgrind_annotate "$dump" >"$RUN_DIR/callgrind-$c.self.txt" 2>/dev/null
  callgrind_annotate --inclusive=yes "$dump" >"$RUN_DIR/callgrind-$c.inclusive.txt" 2>/dev/null
  total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$RUN_DIR/callgrind-$c.self.txt")
  CALLGRIND_IPR[$c]=$(awk -v t="$total" -v n="$requests" 'BEGIN { printf "%.0f", t / n }')
  {
    echo "---- callgrind, case $c: ${CALLGRIND_IPR[$c]} user-space instructions per request ($requests requests)"
    echo "     self cost, top 25 (full: $RUN_DIR/callgrind-$c.self.txt)"
    # awk, not grep | head: under pipefail an early-closing head fails the pipeline.
    awk '/^ *[0-9,]+ \( *[0-9.]+%\)  / && !/PROGRAM TOTALS/ && n < 25 { print; n++ }' \
      "$RUN_DIR/callgrind-$c.self.txt" >"$RUN_DIR/callgrind-$c.top.txt"
    callgrind_table "$RUN_DIR/callgrind-$c.top.txt"
    echo "     inclusive cost of the proxy's own functions, top 25"
    awk '/^ *[0-9,]+ \( *[0-9.]+%\)  / && /gatehouse_proxy::|ngx_http_/ &&
         !/=>|worker::|serve_io|serve_stream|pipeline::handle/ && n < 25 { print; n++ }' \
      "$RUN_DIR/callgrind-$c.inclusive.txt" >"$RUN_DIR/callgrind-$c.own.txt"
    callgrind_table "$RUN_DIR/callgrind-$c.own.txt"
  } | tee "$RUN_DIR/callgrind-$c.summary.txt" >&2
  kill -TERM "$pid" 2>/dev/null || true
}
