# shellcheck shell=bash
# Gatehouse side of bench/run: Redis servers, snapshots, one `gatehouse proxy` process
# per case (so CPU and peak RSS are attributed to one case each), and the tokens each
# case presents. Sourced by bench/run after the nginx cases are up.

# At least 32 bytes: the controller (standalone, case u) refuses shorter client secrets.
BENCH_CLIENT_SECRET=bench-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d " \n")
# `--token-cache-ttl 0` turns the local token cache off (proxy/src/store/args.rs):
# every enforced request then costs one Redis GET.
GH_NO_CACHE=(--token-cache-ttl 0)
# The token endpoint is reached over plain HTTP on loopback as if TLS had been
# terminated in front: the bench route sets accept_http_if_already_terminated and the
# proxy trusts X-Forwarded-Proto from 127.0.0.0/8 by default (--trusted-proxies). Case
# (g) therefore measures issuing tokens, not TLS.
FORWARDED_HTTPS="X-Forwarded-Proto: https"

# start_redis NAME: a throw-away redis-server on a run-time port; sets REDIS_URL_<NAME>.
start_redis() {
  local name=$1 port
  alloc_port port
  mkdir -p "$RUN_DIR/$name"
  spawn "$name" redis-server --bind 127.0.0.1 --port "$port" --dir "$RUN_DIR/$name" \
    --save '' --appendonly no --protected-mode yes --daemonize no
  wait_listening "$name" "$port"
  printf -v "REDIS_PORT_${name//-/_}" '%s' "$port"
  printf -v "REDIS_URL_${name//-/_}" '%s' "redis://127.0.0.1:$port"
}
redis_port() { local v="REDIS_PORT_${1//-/_}"; printf '%s' "${!v}"; }
redis_url() { local v="REDIS_URL_${1//-/_}"; printf '%s' "${!v}"; }

# Snapshot and extra flags of each Gatehouse process, so --callgrind can start a twin.
declare -A GH_SNAPSHOT GH_FLAGS

# start_gatehouse NAME SNAPSHOT [extra proxy args...]: sets GH_PORT_<NAME>.
# $GH_WRAPPER (e.g. valgrind) is prepended to the command when set.
start_gatehouse() {
  local name=$1 snapshot=$2 port
  shift 2
  GH_SNAPSHOT[$name]=$snapshot
  GH_FLAGS[$name]="$*"
  alloc_port port
  # shellcheck disable=SC2086 # GH_WRAPPER is a word list on purpose
  spawn "$name" env GATEHOUSE_LOG="${GH_LOG:-warn}" ${GH_WRAPPER:-} "$GATEHOUSE" proxy \
    --config-file "$snapshot" --listen "127.0.0.1:$port" "$@"
  wait_listening "$name" "$port" "${GH_START_SECONDS:-10}"
  # Listening is not serving: wait until the snapshot is loaded and routes answer.
  local i code secs=${GH_START_SECONDS:-10}
  for i in $(seq 1 $((secs * 20))); do
    code=$(http_status "http://127.0.0.1:$port/plain/")
    [ "$code" = 200 ] && break
    check_alive "$name"
    sleep 0.05
  done
  [ "$code" = 200 ] || die "$name: /plain/ answers $code after $secs s (log: $RUN_DIR/$name.log)"
  printf -v "GH_PORT_${name//-/_}" '%s' "$port"
}
gh_port() { local v="GH_PORT_${1//-/_}"; printf '%s' "${!v}"; }

# token_url NAME: where NAME's token endpoint is.
token_url() { printf 'http://127.0.0.1:%s/api/oauth2/token' "$(gh_port "$1")"; }

gatehouse_settings() {
  echo "one \`gatehouse proxy\` process per case, snapshot from a file, log level warn."
}

# needs CASE...: true when any of the cases is selected.
needs() {
  local c
  for c in "$@"; do selected "$c" && return 0; done
  return 1
}

# gatehouse_case CASE PROC PATH [TOKEN]
gatehouse_case() {
  CASE_PROC[$1]=$2
  CASE_URL[$1]="http://127.0.0.1:$(gh_port "$2")$3"
  if [ -n "${4:-}" ]; then CASE_HEADER[$1]="Authorization: Bearer $4"; fi
}

setup_gatehouse_cases() {
  needs c d e f g h j l t d10k e10k e1m f1m d100k || return 0
  [ -x "$GATEHOUSE" ] || die "no gatehouse binary at $GATEHOUSE"

  local small="$RUN_DIR/snapshot-small.json" big="$RUN_DIR/snapshot-$SCALE_ROUTES.json"
  # Assigned on their own line: a failing $(...) inside a command's arguments would
  # not stop the script under `set -e`.
  local sha tok
  sha=$(sha256_hex "$BENCH_CLIENT_SECRET")
  write_snapshot "$small" 0 "$UPSTREAM_URL" "$sha" true
  if needs d10k e10k; then
    write_snapshot "$big" "$SCALE_ROUTES" "$UPSTREAM_URL" "$sha" true
  fi

  if needs e f e10k; then start_redis redis-small; fi
  if needs e1m f1m; then start_redis redis-big; fi
  if needs g; then start_redis redis-token; fi

  if needs c; then
    start_gatehouse gh-plain "$small"
    gatehouse_case c gh-plain /plain/bench
  fi
  if needs d; then
    start_gatehouse gh-mem "$small"
    tok=$(fetch_token "$(token_url gh-mem)")
    gatehouse_case d gh-mem /api/bench "$tok"
  fi
  if needs d100k; then
    # The served file, and for each swap mode the version the swap run alternates
    # with it (see SWAP_MODES in bench/lib/swap.sh).
    GH_BIG_ORIG="$RUN_DIR/snapshot-big-a.json"
    write_snapshot "$GH_BIG_ORIG" "$BIG_ROUTES" "$UPSTREAM_URL" "$sha" true
    for mode in "${SWAP_MODES[@]}"; do
      GH_BIG_ALT[$mode]="$RUN_DIR/snapshot-big-$mode.json"
      swap_mode_env "$mode" write_snapshot "${GH_BIG_ALT[$mode]}" "$BIG_ROUTES" "$UPSTREAM_URL" "$sha" true
    done
    cp "$GH_BIG_ORIG" "$RUN_DIR/snapshot-big.json"
    # The config modules only log more: read and compile times (info), compile phases
    # (debug).
    GH_LOG="warn,gatehouse_proxy::compiled=debug,gatehouse_proxy::source=info" \
      GH_START_SECONDS=60 start_gatehouse gh-mem-big "$RUN_DIR/snapshot-big.json" \
      --config-poll-ms "$SWAP_POLL_MS"
    tok=$(fetch_token "$(token_url gh-mem-big)")
    gatehouse_case d100k gh-mem-big /api/bench "$tok"
  fi
  if needs d10k; then
    start_gatehouse gh-mem-10k "$big"
    tok=$(fetch_token "$(token_url gh-mem-10k)")
    gatehouse_case d10k gh-mem-10k /api/bench "$tok"
  fi
  local tok_small=""
  if needs e e10k f; then
    start_gatehouse gh-redis "$small" --redis "$(redis_url redis-small)"
    tok_small=$(fetch_token "$(token_url gh-redis)")
    gatehouse_case e gh-redis /api/bench "$tok_small"
  fi
  if needs f; then
    start_gatehouse gh-nocache "$small" --redis "$(redis_url redis-small)" "${GH_NO_CACHE[@]}"
    gatehouse_case f gh-nocache /api/bench "$tok_small"
  fi
  if needs e10k; then
    start_gatehouse gh-redis-10k "$big" --redis "$(redis_url redis-small)"
    gatehouse_case e10k gh-redis-10k /api/bench "$tok_small"
  fi
  if needs e1m f1m; then
    start_gatehouse gh-redis-1m "$small" --redis "$(redis_url redis-big)"
    local tok_big
    tok_big=$(fetch_token "$(token_url gh-redis-1m)")
    log "loading $SCALE_TOKENS filler tokens into Redis"
    load_tokens "$(redis_port redis-big)" "$SCALE_TOKENS" "$tok_big"
    gatehouse_case e1m gh-redis-1m /api/bench "$tok_big"
    if needs f1m; then
      start_gatehouse gh-nocache-1m "$small" --redis "$(redis_url redis-big)" "${GH_NO_CACHE[@]}"
      gatehouse_case f1m gh-nocache-1m /api/bench "$tok_big"
    fi
  fi
  if needs h; then
    # Gatehouse answers nginx's auth_request subrequests; nginx proxies to the upstream.
    start_gatehouse gh-authz "$small"
    GH_AUTHZ_PORT=$(gh_port gh-authz)
    local authz_port
    alloc_port authz_port
    render_nginx "$BENCH_DIR/nginx/authz.conf.in" "$RUN_DIR/nginx-authz.conf" "$authz_port"
    spawn nginx-authz "$NGINX" -e "$RUN_DIR/nginx-authz.error.log" -p "$RUN_DIR" \
      -c "$RUN_DIR/nginx-authz.conf"
    wait_listening nginx-authz "$authz_port"
    tok=$(fetch_token "$(token_url gh-authz)")
    CASE_PROC[h]=nginx-authz
    CASE_URL[h]="http://127.0.0.1:$authz_port/api/bench"
    CASE_HEADER[h]="Authorization: Bearer $tok"
    CASE_NO_TWIN[h]="two processes (nginx and Gatehouse) answer each request"
  fi
  if needs j l; then
    # One process for both: the echo servers of bench/lib/streams.sh behind /ws and
    # the gRPC service path; each route issues its own tokens.
    local streams="$RUN_DIR/snapshot-streams.json"
    write_snapshot "$streams" 0 "$UPSTREAM_URL" "$sha" true \
      "http://127.0.0.1:$STREAMS_WS_PORT" "grpc://127.0.0.1:$STREAMS_GRPC_PORT"
    start_gatehouse gh-streams "$streams"
    local port
    port=$(gh_port gh-streams)
    tok=$(fetch_token "http://127.0.0.1:$port/ws/oauth2/token")
    CASE_PROC[j]=gh-streams
    CASE_URL[j]="ws://127.0.0.1:$port/ws/bench"
    CASE_HEADER[j]="Authorization: Bearer $tok"
    tok=$(fetch_token "http://127.0.0.1:$port/gatehouse.test.echo.Echo/oauth2/token")
    CASE_PROC[l]=gh-streams
    CASE_URL[l]="http://127.0.0.1:$port"
    CASE_HEADER[l]="authorization: Bearer $tok"
  fi
  if needs g; then
    start_gatehouse gh-token "$small" --redis "$(redis_url redis-token)"
    gatehouse_case g gh-token /api/oauth2/token
    CASE_HEADER[g]=$FORWARDED_HTTPS
    CASE_METHOD[g]=POST
    CASE_CTYPE[g]=application/x-www-form-urlencoded
    CASE_BODY[g]=$(grant_body)
  fi
}
