"""The chart against the binary it deploys: every flag, env var and port in the
Deployments is one `target/debug/gatehouse` accepts, and the proxy started with the
chart's own arguments answers its probes."""

import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .common import (BINARY, ensure_binary, fail, fail_if, free_port, gatehouse_containers,
                     sh, stop, wait_port)


def gatehouse_help(sub):
    out = sh([BINARY, sub, "--help"])
    if out.returncode != 0:
        fail(f"`gatehouse {sub} --help` failed: {out.stderr.strip()}")
    flags = set(re.findall(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)", out.stdout))
    envs = set(re.findall(r"\[env: ([A-Z0-9_]+)[=\]]", out.stdout))
    return flags, envs, out.stdout


def split_args(args):
    """(subcommand, [(flag, value or None)]) from `--flag=value` / `--flag value` args."""
    sub, rest, pairs = args[0], args[1:], []
    i = 0
    while i < len(rest):
        a = rest[i]
        if not a.startswith("--"):
            fail(f"unexpected positional argument {a!r}")
        if "=" in a:
            flag, value = a[2:].split("=", 1)
        elif i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            flag, value = a[2:], rest[i + 1]
            i += 1
        else:
            flag, value = a[2:], None
        pairs.append((flag, value))
        i += 1
    return sub, pairs


def listen_port(value):
    return int(value.rsplit(":", 1)[1])


def test_deployments_match_binary_help(rendered, record_property):
    """Deployment args, env and ports match `gatehouse <cmd> --help` of target/debug/gatehouse."""
    ensure_binary()
    helps, problems, seen = {}, [], 0
    for scenario, (_, docs) in rendered.items():
        for dep, c in gatehouse_containers(docs):
            where = f"[{scenario}] {dep['metadata']['name']}"
            sub, pairs = split_args(c["args"])
            if sub not in helps:
                helps[sub] = gatehouse_help(sub)
            flags, envs, _ = helps[sub]
            seen += 1
            for flag, _ in pairs:
                if flag not in flags:
                    problems.append(f"{where}: `gatehouse {sub}` has no flag --{flag}")
            # Env: read by the binary (clap `env`), by the log filter, or expanded into args.
            referenced = " ".join(c["args"]) + " ".join(str(e.get("value", "")) for e in c.get("env", []))
            for e in c.get("env", []):
                name = e["name"]
                if name not in envs and name != "GATEHOUSE_LOG" and f"$({name})" not in referenced:
                    problems.append(f"{where}: env {name} is neither read by `gatehouse {sub}` nor used in args")
            # Every listener flag has a container port, and every container port a listener.
            listeners = {flag: listen_port(v) for flag, v in pairs if flag.endswith("listen") or flag.endswith("listen-tls")}
            ports = {p["containerPort"]: p["name"] for p in c.get("ports", [])}
            for flag, port in listeners.items():
                if port not in ports:
                    problems.append(f"{where}: --{flag} binds port {port}, no containerPort declares it")
            for port, name in ports.items():
                if port not in listeners.values():
                    problems.append(f"{where}: containerPort {name}={port} has no listener flag")
            admin = listeners.get("admin-listen")
            for probe in ("livenessProbe", "readinessProbe"):
                port = c[probe]["httpGet"]["port"]
                port = port if isinstance(port, int) else next((p for p, n in ports.items() if n == port), None)
                if admin is None or port != admin:
                    problems.append(f"{where}: {probe} does not hit the --admin-listen port")
    if not seen:
        problems.append("no gatehouse containers rendered")
    fail_if(problems)
    record_property("summary", f"{seen} containers checked against `gatehouse "
                               f"{{{','.join(sorted(helps))}}} --help`")


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_proxy_with_chart_args_answers_probes(rendered, record_property):
    """Run `gatehouse proxy` with the default Deployment's args (listen addresses moved to
    free loopback ports, Redis a real redis-server), then GET each probe path."""
    ensure_binary()
    if not shutil.which("redis-server"):
        fail("redis-server is not installed (scripts/test installs it)")
    _, docs = rendered["default"]
    dep, c = next((d, c) for d, c in gatehouse_containers(docs) if c["args"][0] == "proxy")
    with tempfile.TemporaryDirectory() as tmp:
        redis_port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy = None
        try:
            env = {e["name"]: e.get("value", "") for e in c["env"] if "value" in e}
            env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            port_map, args = {}, []
            for a in c["args"]:
                a = a.replace("$(REDIS_URL)", env["REDIS_URL"])
                m = re.match(r"^(--[a-z-]*listen[a-z-]*)=(?:.+):(\d+)$", a)
                if m:
                    new = free_port()
                    port_map[int(m.group(2))] = new
                    a = f"{m.group(1)}=127.0.0.1:{new}"
                args.append(a)
            wait_port(redis_port, redis)
            log = open(Path(tmp) / "proxy.log", "w+")
            proxy = subprocess.Popen([BINARY, *args], stdout=log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, GATEHOUSE_LOG="warn", RUST_BACKTRACE="0"))
            named = {p["name"]: p["containerPort"] for p in c["ports"]}
            answers = []
            for probe in ("livenessProbe", "readinessProbe"):
                get = c[probe]["httpGet"]
                port = port_map[named.get(get["port"], get["port"])]
                wait_port(port, proxy, log)
                status = http_status(f"http://127.0.0.1:{port}{get['path']}")
                # Liveness must pass; readiness may say 503 (no snapshot published yet),
                # but the path must exist.
                ok = status == 200 if probe == "livenessProbe" else status in (200, 503)
                answers.append(f"{probe} GET {get['path']} -> {status}")
                if not ok:
                    fail("; ".join(answers))
            record_property("summary", "; ".join(answers))
        finally:
            stop(proxy, redis)
