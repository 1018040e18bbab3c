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
  resp=$(curl -ks --max-time 10 -X POST "$@" -H "$FORWARDED_HTTPS" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    --data-raw "$(grant_body)" "$url") || die "token request to $url failed"
  token=$(printf '%s' "$resp" | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')
  [ -n "$token" ] || die "no access_token from $url: $(printf '%s' "$resp" | head -c 300)"
  printf '%s' "$token"
}

# Key layout of the Redis token store (proxy/src/store/redis/keys.rs, default prefix):
# `<p>at:<sha256 hex>` holds the access token record as JSON with the token's expiry,
# and `<p>fam:<family>` is a set whose members include `a:<sha256 hex>`.
REDIS_PREFIX=gatehouse:

# load_tokens REDIS_PORT COUNT REAL_TOKEN: write COUNT live filler access tokens, each
# in its own family, exactly as the store's issue script lays them out. The record of
# REAL_TOKEN (issued through the endpoint just before) is the template, so the filler
# records have the real shape and size; reading it back also proves the key layout.
load_tokens() {
  local port=$1 count=$2 real=$3 digest template family
  digest=$(sha256_hex "$real")
  template=$(redis-cli -p "$port" --raw GET "${REDIS_PREFIX}at:$digest")
  [ -n "$template" ] || die "the issued token is not at ${REDIS_PREFIX}at:<sha256>: the store's key layout changed (see proxy/src/store/redis/keys.rs)"
  family=$(printf '%s' "$template" | sed -n 's/.*"family":"\([^"]*\)".*/\1/p')
  [ -n "$family" ] || die "token record has no family field: $template"
  TPL=$template FAM=$family awk -v n="$count" -v p="$REDIS_PREFIX" '
    # One RESP command per call: *argc, then $len + arg for each argument.
    function cmd(a1, a2, a3, a4, a5, argc) {
      printf "*%d\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", argc, length(a1), a1, length(a2), a2
      if (argc >= 3) printf "$%d\r\n%s\r\n", length(a3), a3
      if (argc >= 4) printf "$%d\r\n%s\r\n", length(a4), a4
      if (argc >= 5) printf "$%d\r\n%s\r\n", length(a5), a5
    }
    BEGIN {
      # From the environment, not -v: awk would interpret backslashes in -v values.
      tpl = ENVIRON["TPL"]; fam = ENVIRON["FAM"]
      # Split the template around the family value once (plain text, not a regex).
      at = index(tpl, "\"family\":\"" fam "\"") + length("\"family\":\"")
      head = substr(tpl, 1, at - 1); tail = substr(tpl, at + length(fam))
      ttl = 7200000
      for (i = 1; i <= n; i++) {
        hex = sprintf("%056d%08x", 0, i)
        f = sprintf("bench-fill-%08d", i)
        rec = head f tail
        cmd("SET", p "at:" hex, rec, "PX", ttl, 5)
        cmd("SADD", p "fam:" f, "a:" hex, "", "", 3)
        cmd("PEXPIRE", p "fam:" f, ttl, "", "", 3)
      }
    }' | redis-cli -p "$port" --pipe >"$RUN_DIR/load-tokens.log" 2>&1 ||
    die "loading tokens failed: $(tail -n 5 "$RUN_DIR/load-tokens.log")"
  local keys
  keys=$(redis-cli -p "$port" DBSIZE)
  [ "$keys" -ge "$((2 * count))" ] || die "Redis holds $keys keys after loading $count tokens"
}
