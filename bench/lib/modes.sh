# shellcheck shell=bash
# (d)'s token check in Gatehouse's other modes, each against its fair twin:
#   (s) nginx (b) behind an HTTPS listener          -> the baseline of (t)
#   (t) (d) behind Gatehouse's HTTPS listener (`--listen-tls`)
#   (u) (d) served by `gatehouse standalone` from manifests (the controller's
#       translation in the same process), compared with (b) like (d) is
# TLS: one self-signed ECDSA P-256 certificate for both; TLS 1.3 with
# TLS_AES_256_GCM_SHA384 only on both (nginx: `ssl_conf_command Ciphersuites`; Gatehouse
# negotiates the same with OpenSSL clients, checked before the rounds); session
# resumption on both. wrk keeps its connections, so the rounds measure record
# encryption more than handshakes. Sourced by bench/run.

# tls_material: a certificate and key for 127.0.0.1 in $RUN_DIR/tls (once).
tls_material() {
  [ -s "$RUN_DIR/tls/cert.pem" ] && return 0
  mkdir -p "$RUN_DIR/tls"
  openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 2 \
    -subj /CN=gatehouse-bench -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$RUN_DIR/tls/key.pem" -out "$RUN_DIR/tls/cert.pem" 2>/dev/null ||
    die "openssl could not make the bench certificate"
}

# tls_suite HOST:PORT: the TLS version and cipher suite a client gets.
tls_suite() {
  openssl s_client -connect "$1" -servername 127.0.0.1 </dev/null 2>/dev/null |
    awk '/^New, / { print $2, $NF; exit }'
}

setup_mode_cases() {
  needs s t u || return 0
  if needs s t; then
    tls_material
    local port
    alloc_port port
    render_nginx "$BENCH_DIR/nginx/proxy-tls.conf.in" "$RUN_DIR/nginx-tls.conf" "$port"
    spawn nginx-tls "$NGINX" -e "$RUN_DIR/nginx-tls.error.log" -p "$RUN_DIR" \
      -c "$RUN_DIR/nginx-tls.conf"
    wait_listening nginx-tls "$port"
    CASE_PROC[s]=nginx-tls
    CASE_URL[s]="https://127.0.0.1:$port/api/bench"
    CASE_NO_TWIN[s]="the callgrind twin speaks plain HTTP"
    TLS_SUITE_s=$(tls_suite "127.0.0.1:$port")
  fi
  if needs t; then
    local tls_port
    alloc_port tls_port
    start_gatehouse gh-tls "$RUN_DIR/snapshot-small.json" --listen-tls "127.0.0.1:$tls_port" \
      --tls-cert "$RUN_DIR/tls/cert.pem" --tls-key "$RUN_DIR/tls/key.pem"
    local tok
    tok=$(fetch_token "https://127.0.0.1:$tls_port/api/oauth2/token")
    CASE_PROC[t]=gh-tls
    CASE_URL[t]="https://127.0.0.1:$tls_port/api/bench"
    CASE_HEADER[t]="Authorization: Bearer $tok"
    CASE_NO_TWIN[t]="the callgrind twin speaks plain HTTP"
    TLS_SUITE_t=$(tls_suite "127.0.0.1:$tls_port")
    [ "$TLS_SUITE_t" = "${TLS_SUITE_s:-$TLS_SUITE_t}" ] ||
      die "(s) and (t) negotiate different TLS: nginx '$TLS_SUITE_s', Gatehouse '$TLS_SUITE_t'"
  fi
  if needs u; then start_standalone_case; fi
}

# The bench route and client of the snapshot, as manifests `gatehouse standalone` reads.
write_standalone_manifests() {
  local dir=$1
  mkdir -p "$dir"
  cat >"$dir/bench.yaml" <<YAML
apiVersion: gatehouse.dev/v1alpha1
kind: Consumer
metadata:
  name: bench
spec:
  username: bench
  customId: bench-001
---
apiVersion: v1
kind: Secret
metadata:
  name: bench-client-credentials
stringData:
  client_id: $BENCH_CLIENT_ID
  client_secret: $BENCH_CLIENT_SECRET
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Client
metadata:
  name: bench-client
spec:
  consumerRef:
    name: bench
  name: Bench client
  clientType: confidential
  redirectUris: [https://bench.invalid/cb]
  grantTypes: [client_credentials]
  credentialsSecretRef:
    name: bench-client-credentials
---
apiVersion: gatehouse.dev/v1alpha1
kind: ProtectedRoute
metadata:
  name: api
spec:
  paths: [/api]
  backend:
    url: $UPSTREAM_URL
  oauth2:
    clientCredentials: true
    tokenExpiration: 7200
    acceptHttpIfAlreadyTerminated: true
    rateLimits:
      perAddress: "off"
      perClient: "off"
YAML
}

start_standalone_case() {
  local dir="$RUN_DIR/standalone" port i tok=""
  write_standalone_manifests "$dir"
  alloc_port port
  spawn gh-standalone env GATEHOUSE_LOG=warn "$GATEHOUSE" standalone --manifests "$dir" \
    --listen "127.0.0.1:$port" --no-tls
  wait_listening gh-standalone "$port"
  # Listening is not serving: the manifests are translated after the listener is up.
  for i in $(seq 1 200); do
    check_alive gh-standalone
    tok=$(fetch_token "http://127.0.0.1:$port/api/oauth2/token" 2>/dev/null) && break
    tok=""
    sleep 0.05
  done
  [ -n "$tok" ] || tok=$(fetch_token "http://127.0.0.1:$port/api/oauth2/token")
  CASE_PROC[u]=gh-standalone
  CASE_URL[u]="http://127.0.0.1:$port/api/bench"
  CASE_HEADER[u]="Authorization: Bearer $tok"
  CASE_NO_TWIN[u]="standalone reads manifests, not the twin's snapshot file; count (d)"
}

# modes_section: the TLS pairing and the standalone comparison.
modes_section() {
  echo "## Other modes: HTTPS and \`gatehouse standalone\`"
  echo
  if needs s t; then
    echo "(t) against nginx with the same certificate and cipher suite (nginx ${TLS_SUITE_s:-?}, Gatehouse ${TLS_SUITE_t:-?}), ratio to (s):"
    echo
    summary_table nginx s t
    echo
  fi
  if needs u; then
    summary_table b u
    echo
    if needs d; then
      delta_line u d
      echo
    fi
  fi
}
