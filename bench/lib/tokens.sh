# shellcheck shell=bash
# Tokens for bench/run: real ones obtained from the proxy's own /oauth2/token endpoint
# (client_credentials), and bulk filler tokens written straight into Redis for the
# 1,000,000-token scale run.

# sha256_hex STRING
sha256_hex() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# grant_body: the form body of a client_credentials grant for the bench client.
grant_body() {
  printf 'grant_type=client_credentials&client_id=%s&client_secret=%s' \
    "$BENCH_CLIENT_ID" "$BENCH_CLIENT_SECRET"
}

# fetch_token TOKEN_URL [curl args...]: POST a client_credentials grant and print the
# access token. Fails with the response when there is none.
fetch_token() {
  local url=$1
  shift
  local resp token
  resp=$(curl -ks --max-time 10 -X POST "$@" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    --data-raw "$(grant_body)" "$url") || die "token request to $url failed"
  token=$(printf '%s' "$resp" | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')
  [ -n "$token" ] || die "no access_token from $url: $(printf '%s' "$resp" | head -c 300)"
  printf '%s' "$token"
}
