# shellcheck shell=bash
# Snapshot generator for bench/run: the proxy config (proxy::config::Snapshot JSON)
# every Gatehouse case serves, optionally padded with filler routes for the scale runs.
#
# Routes, in this order (fillers first, so a router that scans linearly pays for all
# of them before it reaches the measured routes):
#   fill/svc-N   filler routes, three shapes in turn: `/svc-N`; `/svc-N/v1` on host
#                `svc-N.example.com`; `/api/svc-N` (nested under the measured `/api`
#                route, so prefix matching must look past it). Every other filler is
#                OAuth2-protected.
#   bench/plain  `/plain`, no OAuth2                              -> case (c)
#   bench/api    `/api`, OAuth2, client_credentials enabled       -> cases (d)-(g)
#   bench/ws     `/ws` to WS_UPSTREAM, OAuth2 like bench/api       -> case (j), when given
#   bench/grpc   `/gatehouse.test.echo.Echo` to GRPC_UPSTREAM (a grpc:// URL: h2c),
#                OAuth2 like bench/api                            -> case (l), when given
# Each OAuth2 route has its own token endpoint (`<path>/oauth2/token`); a token is
# valid on the route that issued it.
# One consumer and one confidential client (`bench-client`) that may use
# client_credentials; with fillers, also one filler consumer and client per 10 filler
# routes (`fill-consumer-N`, `fill-client-N`), as a cluster with many routes has.
# $SNAPSHOT_VARIANT (optional, e.g. `b`) changes the revision and filler routes but none
# of the measured routes: the changed snapshots the swap-under-load run replaces the
# file with. Which fillers: every one, or with $SNAPSHOT_CHANGE_EVERY=K only every K-th
# (K=100: 1 %). How: $SNAPSHOT_CHANGE=ids (default) renames the route (id, path and
# host: `svc-N` becomes `svc<variant>-N`, so the routing table changes too);
# $SNAPSHOT_CHANGE=upstream keeps id, path and host and points its upstream at another
# base path (`<upstream>/<variant>`), as an Endpoints update does.

BENCH_CLIENT_ID=bench-client
BENCH_CONSUMER_ID=bench/consumer

# write_snapshot FILE FILLERS UPSTREAM_URL CLIENT_SECRET_SHA256 ACCEPT_FORWARDED_HTTPS
#                [WS_UPSTREAM GRPC_UPSTREAM]
write_snapshot() {
  local file=$1 fillers=$2 upstream=$3 secret_sha=$4 forwarded=$5 ws=${6:-} grpc=${7:-}
  awk -v n="$fillers" -v up="$upstream" -v sha="$secret_sha" -v fwd="$forwarded" \
    -v client="$BENCH_CLIENT_ID" -v consumer="$BENCH_CONSUMER_ID" -v ws="$ws" -v grpc="$grpc" \
    -v variant="${SNAPSHOT_VARIANT:-}" -v every="${SNAPSHOT_CHANGE_EVERY:-1}" \
    -v change="${SNAPSHOT_CHANGE:-ids}" '
    function ups_of(u) {
      return "\"upstream\":{\"endpoints\":[\"" u "\"],\"connect_timeout_ms\":2000,\"response_timeout_ms\":10000}"
    }
    function ups() { return ups_of(up) }
    function oauth_of() {
      return "\"oauth2\":{\"scopes\":[],\"mandatory_scope\":false,\"token_expiration\":7200," \
        "\"enable_authorization_code\":false,\"enable_client_credentials\":true," \
        "\"rate_limits\":{\"per_address\":\"off\",\"per_client\":\"off\"}," \
        "\"hide_credentials\":false,\"accept_http_if_already_terminated\":" fwd "}"
    }
    function route(id, path, u) {
      printf ",\n{\"id\":\"%s\",\"hosts\":[],\"paths\":[\"%s\"],\"strip_path\":false,\"preserve_host\":false,%s,%s}", id, path, ups_of(u), oauth_of()
    }
    BEGIN {
      printf "{\"format\":1,\"revision\":\"bench-%d%s\",\"routes\":[\n", n, variant
      for (i = 1; i <= n; i++) {
        changed = variant != "" && i % every == 0
        id = sprintf("svc%s-%05d", (changed && change == "ids") ? variant : "", i)
        fu = (changed && change == "upstream") ? up "/" variant : up
        shape = i % 3
        if (shape == 0) { hosts = "[]"; path = "/" id }
        else if (shape == 1) { hosts = "[\"" id ".example.com\"]"; path = "/" id "/v1" }
        else { hosts = "[]"; path = "/api/" id }
        oauth = (i % 2 == 0) ? ",\"oauth2\":{\"enable_client_credentials\":true}" : ""
        printf "{\"id\":\"fill/%s\",\"hosts\":%s,\"paths\":[\"%s\"],\"strip_path\":true,\"preserve_host\":false,%s%s},\n", id, hosts, path, ups_of(fu), oauth
      }
      printf "{\"id\":\"bench/plain\",\"hosts\":[],\"paths\":[\"/plain\"],\"strip_path\":false,\"preserve_host\":false,%s},\n", ups()
      printf "{\"id\":\"bench/api\",\"hosts\":[],\"paths\":[\"/api\"],\"strip_path\":false,\"preserve_host\":false,%s,%s}", ups(), oauth_of()
      if (ws != "") route("bench/ws", "/ws", ws)
      if (grpc != "") route("bench/grpc", "/gatehouse.test.echo.Echo", grpc)
      nc = int(n / 10)
      printf "\n],\"consumers\":[{\"id\":\"%s\",\"username\":\"bench\",\"custom_id\":\"bench-001\"}", consumer
      for (i = 1; i <= nc; i++)
        printf ",\n{\"id\":\"fill/consumer-%05d\",\"username\":\"fill-%05d\",\"custom_id\":\"fill-%05d\"}", i, i, i
      printf "],\n\"clients\":["
      for (i = 1; i <= nc; i++) {
        printf "{\"client_id\":\"fill-client-%05d\",\"secret_sha256\":\"%s\",\"name\":\"Filler client %d\",", i, sha, i
        printf "\"consumer_id\":\"fill/consumer-%05d\",\"client_type\":\"confidential\",\"redirect_uris\":[\"https://fill-%05d.invalid/cb\"],", i, i
        printf "\"grant_types\":[\"client_credentials\"],\"scopes\":null},\n"
      }
      printf "{\"client_id\":\"%s\",\"secret_sha256\":\"%s\",\"name\":\"Bench client\",", client, sha
      printf "\"consumer_id\":\"%s\",\"client_type\":\"confidential\",\"redirect_uris\":[\"https://bench.invalid/cb\"],", consumer
      printf "\"grant_types\":[\"client_credentials\"],\"scopes\":null}]}\n"
    }' >"$file"
}
