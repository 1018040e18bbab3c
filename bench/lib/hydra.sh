# shellcheck shell=bash
# Ory Hydra side of bench/run (issue 15): the same two OAuth2 operations measured on
# Hydra and on Gatehouse in the same rounds.
#
#   m  Hydra, client_credentials grant, in-memory store, stock client-secret hasher
#      (PBKDF2, 25,000 iterations: what a default deployment pays per grant)
#   n  Hydra, the same grant with PBKDF2 at 1 iteration, so the client check costs
#      about what ours does (one SHA-256 of the secret); compared with (g) too
#   o  Hydra, token introspection (admin API, which asks no client authentication)
#   p  Gatehouse, token introspection, Redis store without the local cache (every
#      call one Redis GET, like Hydra's one database read), the client authenticated
#      with its secret in the body
#   q  (n) with Hydra on PostgreSQL (Debian's, a private cluster on a run-time port,
#      synchronous_commit off: our Redis does not fsync either)
#   r  (o) with Hydra on that PostgreSQL
#
# (g) — Gatehouse's token endpoint with the Redis store — is the Gatehouse side of
# (m) and (n). Hydra runs `hydra serve all --dev` (plain HTTP on loopback, as our
# token endpoint does behind X-Forwarded-Proto) with DSN=memory (SQLite in memory),
# log level warn like Gatehouse, telemetry off, public and admin ports chosen at run
# time. Hydra is built from the module pinned in bench/hydra (bench/hydra/build).
# Sourced by bench/run after the Gatehouse cases are up.

HYDRA_CASES=(m n o p q r)
# Gatehouse case of each Hydra case, and which side is the base of a ratio.
declare -A HYDRA_PAIR=([m]=g [n]=g [o]=p [q]=g [r]=p)

# hydra_wanted: whether the Hydra cases join a run that did not list its cases:
# with --hydra, or in a full run when Hydra is already built (never in --quick, which
# CI runs, unless asked: building Hydra takes minutes).
hydra_wanted() {
  [ "$HYDRA" = 1 ] && return 0
  [ "$QUICK" = 0 ] && [ -x "$ROOT/target/bench-tools/hydra" ]
}

# start_hydra NAME [ENV=VALUE...]: `hydra serve all` on two run-time loopback ports;
# sets HYDRA_PUBLIC_<NAME> and HYDRA_ADMIN_<NAME> to their base URLs.
start_hydra() {
  local name=$1 public admin
  shift
  alloc_port public
  alloc_port admin
  spawn "$name" env DSN=memory SECRETS_SYSTEM="bench-system-secret-$RANDOM$RANDOM$RANDOM" \
    SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$public" \
    SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$admin" \
    URLS_SELF_ISSUER="http://127.0.0.1:$public" LOG_LEVEL=warn "$@" \
    "$HYDRA_BIN" serve all --dev --sqa-opt-out
  wait_listening "$name" "$admin" 30
  wait_listening "$name" "$public" 30
  local i code
  for i in $(seq 1 200); do
    code=$(http_status "http://127.0.0.1:$admin/health/ready")
    [ "$code" = 200 ] && break
    check_alive "$name"
    sleep 0.05
  done
  [ "$code" = 200 ] || die "$name: /health/ready answers $code (log: $RUN_DIR/$name.log)"
  printf -v "HYDRA_PUBLIC_${name//-/_}" '%s' "http://127.0.0.1:$public"
  printf -v "HYDRA_ADMIN_${name//-/_}" '%s' "http://127.0.0.1:$admin"
}
hydra_public() { local v="HYDRA_PUBLIC_${1//-/_}"; printf '%s' "${!v}"; }
hydra_admin() { local v="HYDRA_ADMIN_${1//-/_}"; printf '%s' "${!v}"; }

# start_postgres NAME: a private PostgreSQL cluster (trust auth, loopback, run-time
# port) owned by the postgres user, data in $RUN_DIR/NAME; sets PG_DSN_<NAME>.
start_postgres() {
  local name=$1 port bin dir=$RUN_DIR/$1
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$bin/initdb" ] || die "PostgreSQL's initdb not found under /usr/lib/postgresql"
  alloc_port port
  # PostgreSQL refuses to run as root; its user must reach the data directory.
  chmod o+x "$RUN_DIR"
  mkdir -p "$dir"
  chown postgres: "$dir"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres \
    >"$RUN_DIR/$name.initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$RUN_DIR/$name.initdb.log")"
  spawn "$name" runuser -u postgres -- "$bin/postgres" -D "$dir/data" -k "$dir" \
    -c listen_addresses=127.0.0.1 -p "$port" -c synchronous_commit=off -c max_connections=200
  wait_listening "$name" "$port" 30
  printf -v "PG_DSN_${name//-/_}" '%s' "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}
pg_dsn() { local v="PG_DSN_${1//-/_}"; printf '%s' "${!v}"; }

# hydra_token NAME GRANT_CASE: one access token from Hydra NAME, with GRANT_CASE's
# client credentials.
hydra_token() {
  local resp tok
  resp=$(curl -s --max-time 10 -X POST -H "${CASE_HEADER[$2]}" --data-raw grant_type=client_credentials \
    "$(hydra_public "$1")/oauth2/token")
  tok=$(printf '%s' "$resp" | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')
  [ -n "$tok" ] || die "$1: no access_token: $(printf '%s' "$resp" | head -c 300)"
  printf '%s' "$tok"
}

# hydra_introspect_case CASE NAME TOKEN
hydra_introspect_case() {
  CASE_PROC[$1]=$2
  CASE_URL[$1]="$(hydra_admin "$2")/admin/oauth2/introspect"
  CASE_METHOD[$1]=POST
  CASE_CTYPE[$1]=application/x-www-form-urlencoded
  CASE_BODY[$1]="token=$3"
}

# hydra_client NAME: create a confidential client_credentials client with the bench
# secret through the admin API; prints its (server-chosen) client id.
hydra_client() {
  local resp id
  resp=$(curl -s --max-time 10 -X POST -H 'Content-Type: application/json' \
    --data-raw "{\"client_name\":\"bench\",\"client_secret\":\"$BENCH_CLIENT_SECRET\",\"grant_types\":[\"client_credentials\"],\"token_endpoint_auth_method\":\"client_secret_basic\",\"access_token_strategy\":\"opaque\"}" \
    "$(hydra_admin "$1")/admin/clients") || die "$1: creating the client failed"
  id=$(printf '%s' "$resp" | sed -n 's/.*"client_id" *: *"\([^"]*\)".*/\1/p')
  [ -n "$id" ] || die "$1: no client_id in $(printf '%s' "$resp" | head -c 300)"
  printf '%s' "$id"
}

# hydra_grant_case CASE NAME CLIENT_ID: client_secret_basic (id and secret are
# URL-safe, so the form-encoding RFC 6749 §2.3.1 asks for changes nothing).
hydra_grant_case() {
  CASE_PROC[$1]=$2
  CASE_URL[$1]="$(hydra_public "$2")/oauth2/token"
  CASE_HEADER[$1]="Authorization: Basic $(printf '%s:%s' "$3" "$BENCH_CLIENT_SECRET" | base64 -w0)"
  CASE_METHOD[$1]=POST
  CASE_CTYPE[$1]=application/x-www-form-urlencoded
  CASE_BODY[$1]=grant_type=client_credentials
}

setup_hydra_cases() {
  CASE_DESC[m]="Ory Hydra token endpoint, client_credentials, in-memory, stock hasher (PBKDF2 ×25,000)"
  CASE_DESC[n]="Ory Hydra token endpoint, client_credentials, in-memory, PBKDF2 ×1"
  CASE_DESC[o]="Ory Hydra introspection (admin API), in-memory"
  CASE_DESC[p]="Gatehouse introspection, Redis, no local cache"
  CASE_DESC[q]="Ory Hydra token endpoint, client_credentials, PostgreSQL, PBKDF2 ×1"
  CASE_DESC[r]="Ory Hydra introspection (admin API), PostgreSQL"
  needs m n o p q r || return 0
  # Ratio column of the Hydra table: each Gatehouse case over its Hydra twin.
  CASE_BASE[g]=m CASE_BASE[m]=m CASE_BASE[n]=n CASE_BASE[o]=o CASE_BASE[p]=o
  CASE_BASE[q]=q CASE_BASE[r]=r

  if needs m n o q r; then
    HYDRA_BIN=$("$BENCH_DIR/hydra/build") || die "building Ory Hydra failed (bench/hydra/build)"
    HYDRA_VERSION=$("$HYDRA_BIN" version 2>/dev/null | awk '/^Version:/ { print $2 }')
  fi
  local id resp tok
  if needs m o; then
    start_hydra hydra
    id=$(hydra_client hydra)
    hydra_grant_case m hydra "$id"
    if needs o; then hydra_introspect_case o hydra "$(hydra_token hydra m)"; fi
  fi
  if needs n; then
    start_hydra hydra-pbkdf1 OAUTH2_HASHERS_PBKDF2_ITERATIONS=1
    hydra_grant_case n hydra-pbkdf1 "$(hydra_client hydra-pbkdf1)"
  fi
  if needs q r; then
    start_postgres postgres-hydra
    local dsn
    dsn=$(pg_dsn postgres-hydra)
    DSN=$dsn "$HYDRA_BIN" migrate sql up -e --yes >"$RUN_DIR/hydra-pg-migrate.log" 2>&1 ||
      die "hydra migrate failed: $(tail -n 5 "$RUN_DIR/hydra-pg-migrate.log")"
    start_hydra hydra-pg DSN="$dsn" OAUTH2_HASHERS_PBKDF2_ITERATIONS=1
    hydra_grant_case q hydra-pg "$(hydra_client hydra-pg)"
    if needs r; then hydra_introspect_case r hydra-pg "$(hydra_token hydra-pg q)"; fi
  fi
  if needs p; then
    [ -x "$GATEHOUSE" ] || die "no gatehouse binary at $GATEHOUSE"
    # setup_gatehouse_cases wrote it unless no other Gatehouse case runs.
    [ -f "$RUN_DIR/snapshot-small.json" ] || write_snapshot "$RUN_DIR/snapshot-small.json" 0 \
      "$UPSTREAM_URL" "$(sha256_hex "$BENCH_CLIENT_SECRET")" true
    start_redis redis-introspect
    start_gatehouse gh-introspect "$RUN_DIR/snapshot-small.json" \
      --redis "$(redis_url redis-introspect)" "${GH_NO_CACHE[@]}"
    tok=$(fetch_token "$(token_url gh-introspect)")
    gatehouse_case p gh-introspect /api/oauth2/introspect
    CASE_HEADER[p]=$FORWARDED_HTTPS
    CASE_METHOD[p]=POST
    CASE_CTYPE[p]=application/x-www-form-urlencoded
    CASE_BODY[p]="token=$tok&client_id=$BENCH_CLIENT_ID&client_secret=$BENCH_CLIENT_SECRET"
  fi
}

# hydra_section: the RESULTS.md section comparing each Gatehouse case with Hydra in
# the same round (ratio of req/s, p99 difference).
hydra_section() {
  echo "## Against Ory Hydra ${HYDRA_VERSION:-}, same run, same machine"
  echo
  echo "Hydra: \`hydra serve all --dev --sqa-opt-out\`, DSN=memory (SQLite in memory), log level warn, GOMAXPROCS unset ($(nproc) cores), built by \`bench/hydra/build\` from the pinned module. Gatehouse: one \`gatehouse proxy\` per case with its own Redis. Goal (issue 15): ≥ 10× Hydra's rate at equal or better p99."
  echo
  local c
  for c in m n o q r; do
    selected "$c" || continue
    selected "${HYDRA_PAIR[$c]}" || continue
    echo "- $(delta_line "${HYDRA_PAIR[$c]}" "$c")"
  done
  echo
}
