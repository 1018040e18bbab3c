# shellcheck shell=bash
# WebSocket and gRPC side of bench/run, cases (i)-(l): the echo servers and the load
# client are e2e/examples/bench_streams.rs (wrk speaks neither), nginx (i, k) is in front
# of the same servers as Gatehouse (j, l). Sourced by bench/run; the Gatehouse process of
# (j) and (l) is started by bench/lib/gatehouse.sh.

# build_streams: build (or locate) the bench_streams example; sets STREAMS_BIN.
build_streams() {
  case "$BUILD" in
    release)
      log "cargo build --release (bench_streams example)"
      (cd "$ROOT" && cargo build --release --locked -p gatehouse-e2e --example bench_streams)
      STREAMS_BIN="$TARGET_DIR/release/examples/bench_streams"
      ;;
    debug)
      log "cargo build (bench_streams example, debug)"
      (cd "$ROOT" && cargo build --locked -p gatehouse-e2e --example bench_streams)
      STREAMS_BIN="$TARGET_DIR/debug/examples/bench_streams"
      ;;
    none)
      STREAMS_BIN=${STREAMS_BIN:-$TARGET_DIR/release/examples/bench_streams}
      ;;
  esac
  [ -x "$STREAMS_BIN" ] || die "no bench_streams binary at $STREAMS_BIN"
}

# setup_stream_servers: the echo servers, and nginx in front of them for (i) and (k).
# Sets STREAMS_WS_PORT and STREAMS_GRPC_PORT (the echo servers' ports).
setup_stream_servers() {
  needs_stream i j k l || return 0
  build_streams
  local ports="$RUN_DIR/streams.ports" i
  spawn streams-echo "$STREAMS_BIN" serve "$ports"
  for i in $(seq 1 200); do
    [ -s "$ports" ] && break
    check_alive streams-echo
    sleep 0.05
  done
  [ -s "$ports" ] || die "bench_streams serve wrote no ports (log: $RUN_DIR/streams-echo.log)"
  STREAMS_WS_PORT=$(sed -n 's/.*ws=\([0-9]*\).*/\1/p' "$ports")
  STREAMS_GRPC_PORT=$(sed -n 's/.*grpc=\([0-9]*\).*/\1/p' "$ports")
  if needs_stream i k; then
    local ws_port
    alloc_port ws_port
    alloc_port NGINX_GRPC_PORT
    render_nginx "$BENCH_DIR/nginx/streams.conf.in" "$RUN_DIR/nginx-streams.conf" "$ws_port"
    spawn nginx-streams "$NGINX" -e "$RUN_DIR/nginx-streams.error.log" -p "$RUN_DIR" \
      -c "$RUN_DIR/nginx-streams.conf"
    wait_listening nginx-streams "$ws_port"
    wait_listening nginx-streams "$NGINX_GRPC_PORT"
    CASE_URL[i]="ws://127.0.0.1:$ws_port/ws/bench"
    CASE_URL[k]="http://127.0.0.1:$NGINX_GRPC_PORT"
    CASE_PROC[i]=nginx-streams
    CASE_PROC[k]=nginx-streams
  fi
  local c
  for c in i j k l; do
    CASE_NO_TWIN[$c]="measured by bench_streams, which --callgrind does not drive"
  done
}

# needs_stream CASE...: true when any of the cases is selected.
needs_stream() {
  local c
  for c in "$@"; do selected "$c" && return 0; done
  return 1
}

# stream_load CASE SECONDS REPORT: one bench_streams run with the shared settings
# (SECONDS 0: a single exchange, failing unless it succeeds).
stream_load() {
  local c=$1 args=()
  [ -n "${CASE_HEADER[$c]:-}" ] && args+=("${CASE_HEADER[$c]}")
  "$STREAMS_BIN" "${CASE_TOOL[$c]}" "${CASE_URL[$c]}" "$2" "$CONNECTIONS" "$3" "${args[@]}"
}
