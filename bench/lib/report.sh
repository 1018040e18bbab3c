# shellcheck shell=bash
# Aggregation and output for bench/run: turns the per-run rows in $RUN_DIR/runs.tsv into
# the summary tables (stdout and RESULTS.md).
#
# runs.tsv columns (tab-separated, one row per measured wrk run):
#   round case rps p50_us p99_us p999_us status_errors socket_errors cpu_ticks requests
#   peak_rss_kib timeouts
# cpu_ticks is -1 when the case has no proxy process (case a).

# AWK_MEDIAN: the awk function median(list) of a space-separated list of numbers (""
# when empty), put in front of every awk program here that takes a median.
AWK_MEDIAN='
    function median(list,    n, a, i, j, t) {
      n = split(list, a, " ")
      if (n == 0) return ""
      for (i = 2; i <= n; i++) {           # insertion sort (mawk has no asort)
        t = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
      }
      if (n % 2) return a[(n + 1) / 2] + 0
      return (a[n / 2] + a[n / 2 + 1]) / 2
    }
'

# summary_table BASE_MODE CASES...: a Markdown table of the medians over rounds.
# BASE_MODE "b" divides by case b of the same round; "own", "nginx" and "hydra" divide
# by each case's own base (CASE_BASE): the small case of a scale run, the nginx twin of
# a WebSocket or gRPC case, or the Ory Hydra twin of an OAuth2 endpoint case.
summary_table() {
  local mode=$1
  shift
  local spec="" c
  for c in "$@"; do
    spec+="$c|${CASE_BASE[$c]:-}|${CASE_DESC[$c]}"$'\n'
  done
  local base_header="× (b)"
  [ "$mode" = own ] && base_header="× small case"
  [ "$mode" = nginx ] && base_header="× nginx"
  [ "$mode" = hydra ] && base_header="× Hydra"
  awk -F'\t' -v spec="$spec" -v tck="$CLK_TCK" -v mode="$mode" -v bh="$base_header" "$AWK_MEDIAN"'
    function add(arr, key, v) { arr[key] = (key in arr) ? arr[key] " " v : v }
    {
      r = $1; c = $2
      rps[c, r] = $3; seen[c, r] = 1
      add(RPS, c, $3); add(P50, c, $4); add(P99, c, $5); add(P999, c, $6)
      st[c] += $7; so[c] += $8; to[c] += $12
      if ($9 >= 0) { add(CPU, c, $9 / tck); add(US, c, ($9 / tck) * 1e6 / ($10 > 0 ? $10 : 1)) }
      if ($11 > rss[c]) rss[c] = $11
      if (r > rounds) rounds = r
    }
    END {
      printf "| case | what | req/s | %s | p50 ms | p99 ms | p99.9 ms | non-2xx | socket errors | timeouts | proxy CPU s | CPU µs/req | peak RSS MiB |\n", bh
      printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
      n = split(spec, lines, "\n")
      for (k = 1; k <= n; k++) {
        if (lines[k] == "") continue
        split(lines[k], f, "|"); c = f[1]; base = f[2]; desc = f[3]
        if (mode == "b") base = "b"
        if (!(c in RPS)) { printf "| %s | %s | not run | | | | | | | | | | |\n", c, desc; continue }
        ratios = ""
        for (r = 1; r <= rounds; r++)
          if (((c, r) in seen) && ((base, r) in seen) && rps[base, r] > 0)
            ratios = ratios " " rps[c, r] / rps[base, r]
        ratio = (c == base) ? "1.00" : (ratios == "" ? "—" : sprintf("%.2f", median(ratios)))
        cpu = (c in CPU) ? sprintf("%.2f", median(CPU[c])) : "—"
        us = (c in US) ? sprintf("%.1f", median(US[c])) : "—"
        mem = (c in CPU) ? sprintf("%.1f", rss[c] / 1024) : "—"
        printf "| %s | %s | %.0f | %s | %.3f | %.3f | %.3f | %d | %d | %d | %s | %s | %s |\n", \
          c, desc, median(RPS[c]), ratio, median(P50[c]) / 1000, median(P99[c]) / 1000, \
          median(P999[c]) / 1000, st[c], so[c], to[c], cpu, us, mem
      }
    }' "$RUN_DIR/runs.tsv"
}

# rounds_table CASES...: the raw req/s of every round, so the medians can be checked.
rounds_table() {
  local cases="$*"
  awk -F'\t' -v cases="$cases" '
    { v[$2, $1] = $3; if ($1 > rounds) rounds = $1 }
    END {
      printf "| case |"; for (r = 1; r <= rounds; r++) printf " round %d |", r; printf "\n"
      printf "|---|"; for (r = 1; r <= rounds; r++) printf "---:|"; printf "\n"
      n = split(cases, cs, " ")
      for (i = 1; i <= n; i++) {
        printf "| %s |", cs[i]
        for (r = 1; r <= rounds; r++) printf " %s |", ((cs[i], r) in v) ? sprintf("%.0f", v[cs[i], r]) : "—"
        printf "\n"
      }
    }' "$RUN_DIR/runs.tsv"
}

# delta_line CASE BASE: one sentence with CASE's req/s ratio to BASE and its p99 delta
# (CASE − BASE), each the median over rounds of the per-round value, so both sides of
# every comparison ran in the same window.
delta_line() {
  awk -F'\t' -v c="$1" -v b="$2" "$AWK_MEDIAN"'
    { rps[$2, $1] = $3; p99[$2, $1] = $5; if ($1 > rounds) rounds = $1 }
    END {
      ratios = ""; deltas = ""; base = ""
      for (r = 1; r <= rounds; r++) {
        if (!((c, r) in rps) || !((b, r) in rps) || rps[b, r] <= 0) continue
        ratios = ratios " " rps[c, r] / rps[b, r]
        deltas = deltas " " (p99[c, r] - p99[b, r]) / 1000
        base = base " " rps[b, r]
      }
      if (ratios == "") { print "(" c ") or (" b ") did not run in the same round."; exit }
      printf "(%s) served %.2f× the requests per second of (%s) (median of per-round ratios; (%s) ran at %.0f req/s), with a p99 latency %+.3f ms relative to (%s).\n", \
        c, median(ratios), b, b, median(base), median(deltas), b
    }' "$RUN_DIR/runs.tsv"
}

# noisy_rounds: a warning line for every round in which nginx (b), the baseline of every
# ratio, served more than 15 % below its median over the rounds: in such a window
# something else took the cores, and every ratio of that round flatters the others.
# Prints nothing when every round is within 15 % (or b did not run).
noisy_rounds() {
  awk -F'\t' "$AWK_MEDIAN"'
    $2 == "b" { v[$1] = $3; list = list " " $3 }
    END {
      if (list == "") exit
      m = median(list)
      for (r in v)
        if (v[r] < 0.85 * m)
          printf "**Warning: noisy window.** In round %d nginx (b) served %.0f req/s, %.0f %% below its median of %.0f: something else used the cores, and that round'"'"'s ratios flatter the cases measured against it.\n\n", r, v[r], 100 * (1 - v[r] / m), m
    }' "$RUN_DIR/runs.tsv"
}
