#!/usr/bin/env bash
# Real-cluster end-to-end test of Gatehouse on kind.
#
# Creates a kind cluster, builds the image from the Dockerfile and loads it, installs the
# Helm chart (bundled Redis with a password, TLS on the proxy), deploys a small Step On
# API as the upstream, applies examples/stepon (its ProtectedRoute's standalone
# `backend.url` replaced by that Service), waits until every Consumer, OAuth2Client
# and ProtectedRoute reports condition Ready, then runs the Step On flow through the
# proxy with curl: clark authorizes Shoe Fly Shoe, the code is swapped for tokens, the
# token reads /stepon/stepcounts, the refresh token yields a new pair and retires the old.
#
# Needs: docker (a running engine), kind, kubectl, helm (v3.8+ or v4), curl, jq, openssl.
# Not part of scripts/test (no Docker engine there); .github/workflows/e2e.yaml runs it.
#
# Usage:
#   e2e/kind.sh            full run; deletes the cluster at the end
#   KEEP_CLUSTER=1 e2e/kind.sh   keep the cluster for poking around
#   e2e/kind.sh upstream-manifest [NAME PORT]   print the Step On API manifests
#   e2e/kind.sh flow       only the curl flow, against an already running Gatehouse:
#                          GATEHOUSE_URL, PROVISION_KEY, CLIENT_ID, CLIENT_SECRET,
#                          REDIRECT_URI, ROUTE_PATH (and optional ROUTE_HOST,
#                          CONSUMER_USERNAME) in the environment
#
# Settings (environment): CLUSTER (gatehouse-e2e), IMAGE (gatehouse:e2e), NAMESPACE
# (gatehouse-system), KIND_NODE_IMAGE (kind's default), LOCAL_PORT (18443),
# SKIP_BUILD=1 (use an IMAGE that is already built).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER=${CLUSTER:-gatehouse-e2e}
IMAGE=${IMAGE:-gatehouse:e2e}
NAMESPACE=${NAMESPACE:-gatehouse-system}
RELEASE=${RELEASE:-gatehouse}
LOCAL_PORT=${LOCAL_PORT:-18443}
WORK=$(mktemp -d)
PF_PID=""

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
pass() { printf 'PASS: %s\n' "$*"; }

need() {
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (see the header of $0)"
}

cleanup() {
  local status=$?
  [ -n "$PF_PID" ] && kill "$PF_PID" 2>/dev/null || true
  if [ "$status" -ne 0 ] && [ "${MODE:-all}" = all ]; then diagnostics || true; fi
  if [ "${MODE:-all}" = all ] && [ "${KEEP_CLUSTER:-0}" != 1 ] && [ "${CREATED_CLUSTER:-0}" = 1 ]; then
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

diagnostics() {
  log "diagnostics"
  kubectl get pods,svc,endpointslices -A -o wide || true
  kubectl get consumers.gatehouse.dev,oauth2clients.gatehouse.dev,protectedroutes.gatehouse.dev -A -o yaml || true
  kubectl -n "$NAMESPACE" get events --sort-by=.lastTimestamp | tail -50 || true
  for c in controller proxy redis; do
    kubectl -n "$NAMESPACE" logs -l "app.kubernetes.io/component=$c" --all-containers --tail=200 --prefix || true
  done
  kubectl -n "${APP_NS:-default}" logs -l app=stepon-api --tail=100 --prefix || true
}

# --- the Step On flow (curl only) ----------------------------------------------------

# curl against the proxy: TLS with the self-signed test certificate, the route's host
# resolved to the port-forward. Prints the body, then the status code on the last line.
gh_curl() {
  local host=${ROUTE_HOST:-localhost}
  curl -sS -k --max-time 20 --resolve "$host:${GATEHOUSE_PORT}:127.0.0.1" \
    -w '\n%{http_code}' "$@"
}

# split "body\nstatus" from gh_curl into BODY and STATUS
call() {
  local out
  out=$(gh_curl "$@")
  STATUS=${out##*$'\n'}
  BODY=${out%$'\n'*}
}

expect_status() {
  local want=$1 what=$2
  [ "$STATUS" = "$want" ] || die "$what: expected HTTP $want, got $STATUS: $BODY"
}

# The login/consent app (Step On's web server) posts clark's consent with the
# provision key; the response carries the redirect to Shoe Fly Shoe with the code.
# Sets CODE. Uses $base from run_flow.
authorize_code() {
  call -X POST "$base/oauth2/authorize" \
    --data-urlencode response_type=code \
    --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode scope=step_counts \
    --data-urlencode "provision_key=$PROVISION_KEY" \
    --data-urlencode authenticated_userid=clark \
    --data-urlencode "redirect_uri=$REDIRECT_URI" \
    --data-urlencode state=e2e-state
  expect_status 200 "authorize"
  local redirect
  redirect=$(jq -er .redirect_uri <<<"$BODY") || die "authorize: no redirect_uri in $BODY"
  [[ "$redirect" == "$REDIRECT_URI"* ]] || die "authorize: redirect $redirect is not to $REDIRECT_URI"
  CODE=$(sed -n 's/.*[?&]code=\([^&]*\).*/\1/p' <<<"$redirect")
  [ -n "$CODE" ] || die "authorize: no code in the redirect"
  [[ "$redirect" == *state=e2e-state* ]] || die "authorize: state not passed back"
  pass "authorize as clark -> redirect with a code"
}

# Shoe Fly Shoe's server swaps a code for tokens (sets BODY and STATUS).
swap_code() {
  call -X POST "$base/oauth2/token" \
    --data-urlencode grant_type=authorization_code \
    --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode "client_secret=$CLIENT_SECRET" \
    --data-urlencode "code=$1" \
    --data-urlencode "redirect_uri=$REDIRECT_URI"
}

run_flow() {
  need curl jq
  : "${GATEHOUSE_URL:?}" "${PROVISION_KEY:?}" "${CLIENT_ID:?}" "${CLIENT_SECRET:?}" "${REDIRECT_URI:?}" "${ROUTE_PATH:?}"
  GATEHOUSE_PORT=${GATEHOUSE_URL##*:}
  local base="${GATEHOUSE_URL%/}${ROUTE_PATH%/}"
  if [ -n "${ROUTE_HOST:-}" ]; then
    base="https://${ROUTE_HOST}:${GATEHOUSE_PORT}${ROUTE_PATH%/}"
  fi
  log "Step On flow through $base"

  call "$base/stepcounts"
  expect_status 401 "no token"
  gh_curl -o /dev/null -D "$WORK/headers" "$base/stepcounts" >/dev/null
  grep -qi '^www-authenticate: Bearer' "$WORK/headers" || die "401 without WWW-Authenticate: Bearer"
  pass "no token -> 401 with WWW-Authenticate: Bearer"

  local access refresh
  authorize_code
  swap_code "$CODE"
  expect_status 200 "code -> token"
  access=$(jq -er .access_token <<<"$BODY") || die "token: no access_token"
  refresh=$(jq -er .refresh_token <<<"$BODY") || die "token: no refresh_token"
  [ "$(jq -r '.token_type | ascii_downcase' <<<"$BODY")" = bearer ] || die "token: token_type is not bearer"
  pass "code swapped for an access and a refresh token"

  call -H "Authorization: Bearer $access" "$base/stepcounts"
  expect_status 200 "stepcounts with token"
  [ "$(jq -r .user <<<"$BODY")" = clark ] || die "upstream did not see clark: $BODY"
  [ "$(jq -r .scope <<<"$BODY")" = step_counts ] || die "upstream scope header: $BODY"
  if [ -n "${CONSUMER_USERNAME:-}" ]; then
    [ "$(jq -r .consumer <<<"$BODY")" = "$CONSUMER_USERNAME" ] || die "upstream consumer header: $BODY"
  fi
  jq -e '.stepcounts | length > 0' <<<"$BODY" >/dev/null || die "no step counts: $BODY"
  pass "GET /stepcounts with the token -> clark's step counts (X-Authenticated-Userid, -Scope, X-Consumer-Username)"

  call -X POST "$base/oauth2/token" \
    --data-urlencode grant_type=refresh_token \
    --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode "client_secret=$CLIENT_SECRET" \
    --data-urlencode "refresh_token=$refresh"
  expect_status 200 "refresh"
  local access2
  access2=$(jq -er .access_token <<<"$BODY") || die "refresh: no access_token"
  [ "$access2" != "$access" ] || die "refresh returned the same access token"
  jq -er .refresh_token <<<"$BODY" >/dev/null || die "refresh: no new refresh_token"
  pass "refresh token -> new token pair"

  call -H "Authorization: Bearer $access2" "$base/stepcounts"
  expect_status 200 "stepcounts with the refreshed token"
  call -H "Authorization: Bearer $access" "$base/stepcounts"
  expect_status 401 "stepcounts with the token the refresh replaced"
  pass "refreshed token works, the replaced one is rejected"

  call -X POST -u "$CLIENT_ID:$CLIENT_SECRET" "$base/oauth2/introspect" \
    --data-urlencode "token=$access2"
  expect_status 200 "introspect"
  [ "$(jq -r .active <<<"$BODY")" = true ] || die "introspect: token not active: $BODY"
  pass "introspection reports the refreshed token active"

  # RFC 6749 4.1.2: a code used twice is refused, and tokens issued from it are revoked.
  local replayed
  authorize_code
  swap_code "$CODE"
  expect_status 200 "second code -> token"
  replayed=$(jq -er .access_token <<<"$BODY") || die "token: no access_token"
  swap_code "$CODE"
  [ "$STATUS" = 400 ] && [ "$(jq -r .error <<<"$BODY")" = invalid_grant ] \
    || die "replayed code: expected 400 invalid_grant, got $STATUS $BODY"
  call -H "Authorization: Bearer $replayed" "$base/stepcounts"
  expect_status 401 "token issued from a replayed code"
  pass "replayed code -> 400 invalid_grant, and the token issued from it is revoked"

  log "Step On flow passed"
}

# --- cluster side ---------------------------------------------------------------------

# The Step On API as the upstream: step counts of the user named by the
# X-Authenticated-Userid header the proxy sets (as in the tutorial's Express app).
stepon_api_manifest() {
  local name=$1 port=$2
  cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}-code
data:
  server.py: |
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    STEPS = {
        "clark": [{"date": "2021-03-01", "count": 10532}, {"date": "2021-03-02", "count": 9421}],
        "annie": [{"date": "2021-03-01", "count": 7340}],
        "bob": [{"date": "2021-03-01", "count": 12011}],
    }

    class StepOn(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?")[0].rstrip("/")
            if path in ("", "/healthz"):
                return self.reply(200, {"ok": True})
            if not path.endswith("/stepcounts"):
                return self.reply(404, {"error": "not found"})
            user = self.headers.get("X-Authenticated-Userid")
            if user not in STEPS:
                return self.reply(401, {"error": "no logged-in user"})
            self.reply(200, {
                "user": user,
                "scope": self.headers.get("X-Authenticated-Scope"),
                "consumer": self.headers.get("X-Consumer-Username"),
                "stepcounts": STEPS[user],
            })

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ThreadingHTTPServer(("0.0.0.0", 8080), StepOn).serve_forever()
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
  labels: {app: stepon-api}
spec:
  replicas: 1
  selector:
    matchLabels: {app: stepon-api}
  template:
    metadata:
      labels: {app: stepon-api}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65534}
      containers:
        - name: api
          image: docker.io/library/python:3.12-alpine
          command: ["python", "-B", "-u", "/app/server.py"]
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /healthz, port: http}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: ["ALL"]}
          volumeMounts: [{name: code, mountPath: /app}]
      volumes:
        - name: code
          configMap: {name: ${name}-code}
---
apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  selector: {app: stepon-api}
  ports:
    - name: http
      port: ${port}
      targetPort: http
EOF
}

run_all() {
  need docker kind kubectl helm curl jq openssl
  docker info >/dev/null 2>&1 || die "no Docker engine reachable"

  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "reusing kind cluster $CLUSTER"
  else
    log "creating kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --wait 180s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
    CREATED_CLUSTER=1
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null

  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building $IMAGE"
    docker build -t "$IMAGE" "$ROOT"
  fi
  log "loading $IMAGE into kind"
  kind load docker-image "$IMAGE" --name "$CLUSTER"

  log "secrets: TLS certificate for the proxy, Redis password"
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=gatehouse-e2e" \
    -addext "subjectAltName=DNS:localhost,DNS:*.local,DNS:*.example.com,DNS:stepon.me" \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
  kubectl -n "$NAMESPACE" create secret tls gatehouse-tls --cert "$WORK/tls.crt" --key "$WORK/tls.key" \
    --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n "$NAMESPACE" create secret generic gatehouse-redis --from-literal=password="$(openssl rand -hex 24)" \
    --dry-run=client -o yaml | kubectl apply -f -

  log "helm install $RELEASE"
  helm upgrade --install "$RELEASE" "$ROOT/charts/gatehouse" --namespace "$NAMESPACE" \
    --set fullnameOverride="$RELEASE" \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
    --set redis.bundled.enabled=true --set redis.passwordSecret.name=gatehouse-redis \
    --set proxy.tls.secretName=gatehouse-tls \
    --set proxy.service.type=ClusterIP \
    --set proxy.autoscaling.enabled=false --set proxy.replicas=2 \
    --set-string 'logLevel=info\,gatehouse_controller=debug'
  kubectl wait --for=condition=Established --timeout 60s \
    crd/consumers.gatehouse.dev crd/oauth2clients.gatehouse.dev crd/protectedroutes.gatehouse.dev
  # Redis and the controller first; proxies report ready once the controller has
  # published a snapshot, which is checked after the example is applied.
  kubectl -n "$NAMESPACE" rollout status "deployment/$RELEASE-redis" --timeout 180s
  kubectl -n "$NAMESPACE" rollout status "deployment/$RELEASE-controller" --timeout 180s
  kubectl -n "$NAMESPACE" get pods -o wide

  # Read the example through the API server's client-side view (the CRDs are installed
  # now) to learn where the route sends traffic and which Secrets hold the credentials.
  kubectl apply --dry-run=client -f "$ROOT/examples/stepon/" -o json > "$WORK/example.json"
  jq '.items // [.]' "$WORK/example.json" > "$WORK/objects.json"
  local route client consumer
  route=$(jq -c 'map(select(.kind == "ProtectedRoute")) | first // empty' "$WORK/objects.json")
  client=$(jq -c 'map(select(.kind == "OAuth2Client")) | first // empty' "$WORK/objects.json")
  consumer=$(jq -c 'map(select(.kind == "Consumer")) | first // empty' "$WORK/objects.json")
  [ -n "$route" ] && [ -n "$client" ] && [ -n "$consumer" ] \
    || die "examples/stepon must hold a Consumer, an OAuth2Client and a ProtectedRoute"
  APP_NS=$(jq -r '.metadata.namespace // "default"' <<<"$route")
  # examples/stepon is written for standalone (backend.url to a loopback port); in a
  # cluster the route points at the Step On API Service deployed here instead.
  local backend port
  backend=$(jq -r '.spec.backend.service.name // "stepon-api"' <<<"$route")
  port=$(jq -r '.spec.backend.service.port // 8080' <<<"$route")
  jq --arg name "$backend" --argjson port "$port" '
    map(if .kind == "ProtectedRoute" and (.spec.backend.service == null)
        then .spec.backend = {service: {name: $name, port: $port}} else . end)
    | {apiVersion: "v1", kind: "List", items: .}' "$WORK/objects.json" > "$WORK/stepon-in-cluster.json"

  log "deploying the Step On API as $APP_NS/$backend:$port"
  kubectl create namespace "$APP_NS" --dry-run=client -o yaml | kubectl apply -f -
  stepon_api_manifest "$backend" "$port" | kubectl -n "$APP_NS" apply -f -
  kubectl -n "$APP_NS" rollout status "deployment/$backend" --timeout 180s

  log "applying examples/stepon (backend: Service $backend:$port)"
  kubectl apply -n "$APP_NS" -f "$WORK/stepon-in-cluster.json"
  kubectl -n "$APP_NS" wait --for=condition=Ready --timeout 120s \
    consumers.gatehouse.dev,oauth2clients.gatehouse.dev,protectedroutes.gatehouse.dev --all
  kubectl -n "$APP_NS" get consumers.gatehouse.dev,oauth2clients.gatehouse.dev,protectedroutes.gatehouse.dev
  pass "every Consumer, OAuth2Client and ProtectedRoute is Ready"
  kubectl -n "$NAMESPACE" rollout status "deployment/$RELEASE-proxy" --timeout 180s
  pass "proxies ready (snapshot loaded, token store reachable)"

  # Credentials as a client application and the login app would hold them.
  # Without credentialsSecretRef the controller generates `<name>-oauth2-credentials`.
  local cred_secret pk_secret pk_key
  cred_secret=$(jq -r '.spec.credentialsSecretRef.name // (.metadata.name + "-oauth2-credentials")' <<<"$client")
  pk_secret=$(jq -er '.spec.oauth2.provisionKeySecretRef.name' <<<"$route") || die "ProtectedRoute has no provisionKeySecretRef"
  pk_key=$(jq -r '.spec.oauth2.provisionKeySecretRef.key // "provision_key"' <<<"$route")
  secret_value() {
    kubectl -n "$APP_NS" get secret "$1" -o json | jq -er --arg k "$2" '.data[$k] | @base64d'
  }
  export CLIENT_ID CLIENT_SECRET PROVISION_KEY REDIRECT_URI ROUTE_PATH ROUTE_HOST CONSUMER_USERNAME GATEHOUSE_URL
  CLIENT_ID=$(secret_value "$cred_secret" client_id)
  CLIENT_SECRET=$(secret_value "$cred_secret" client_secret)
  PROVISION_KEY=$(secret_value "$pk_secret" "$pk_key")
  [ "$(kubectl -n "$APP_NS" get oauth2clients.gatehouse.dev "$(jq -r .metadata.name <<<"$client")" \
      -o jsonpath='{.status.clientId}')" = "$CLIENT_ID" ] || die "OAuth2Client status.clientId differs from its Secret"
  [ -n "$CLIENT_ID" ] && [ -n "$CLIENT_SECRET" ] && [ -n "$PROVISION_KEY" ] || die "credentials Secrets are empty"
  REDIRECT_URI=$(jq -er '.spec.redirectUris[0]' <<<"$client")
  ROUTE_PATH=$(jq -er '.spec.paths[0]' <<<"$route")
  ROUTE_HOST=$(jq -r '(.spec.hosts // [])[0] // "" | sub("^\\*\\."; "e2e.")' <<<"$route")
  CONSUMER_USERNAME=$(jq -r '.spec.username // ""' <<<"$consumer")

  log "port-forward to the proxy Service"
  kubectl -n "$NAMESPACE" port-forward "svc/$RELEASE-proxy" "$LOCAL_PORT:443" >"$WORK/pf.log" 2>&1 &
  PF_PID=$!
  for _ in $(seq 1 100); do
    if curl -sk -o /dev/null "https://127.0.0.1:$LOCAL_PORT/" 2>/dev/null; then break; fi
    kill -0 "$PF_PID" 2>/dev/null || die "port-forward exited: $(cat "$WORK/pf.log")"
    sleep 0.2
  done
  GATEHOUSE_URL="https://localhost:$LOCAL_PORT"

  # Proxies pick the snapshot up from Redis: wait until the route answers (401 without
  # a token) rather than 404.
  GATEHOUSE_PORT=$LOCAL_PORT
  for _ in $(seq 1 50); do
    call -o /dev/null "https://${ROUTE_HOST:-localhost}:$LOCAL_PORT${ROUTE_PATH%/}/stepcounts" || true
    [ "${STATUS:-}" = 401 ] && break
    sleep 0.2
  done

  run_flow
  log "kind e2e passed"
}

MODE=${1:-all}
case "$MODE" in
  all) run_all ;;
  flow) run_flow ;;
  # The upstream's manifests (scripts/chart-test validates them and runs its server).
  upstream-manifest) stepon_api_manifest "${2:-stepon-api}" "${3:-8080}" ;;
  *) die "usage: $0 [all|flow|upstream-manifest [NAME PORT]]" ;;
esac
