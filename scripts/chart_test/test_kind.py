"""The kind end-to-end script (e2e/kind.sh) without a cluster: its Step On API's
manifests and server, then its curl flow against `gatehouse standalone` on
examples/stepon."""

import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import yaml

from .common import (BINARY, EXAMPLES, ROOT, apt_install, docs_of, ensure_binary, fail,
                     fail_if, free_port, kubernetes_validate, sh, stop, wait_port)


def test_kind_upstream_manifests_and_server(out_dir, record_property):
    """e2e/kind.sh Step On API: manifests valid, its server answers as the flow expects."""
    out = sh([ROOT / "e2e" / "kind.sh", "upstream-manifest", "stepon-api", "8080"])
    if out.returncode != 0:
        fail(out.stderr.strip())
    manifest = out_dir / "stepon-api.yaml"
    manifest.write_text(out.stdout)
    docs = docs_of(out.stdout)
    problems, passed = kubernetes_validate([manifest], allow_no_schema=set())
    if passed != len(docs):
        problems.append(f"{passed} of {len(docs)} objects valid")
    server = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["server.py"]
    port = free_port()
    code = out_dir / "server.py"
    code.write_text(server.replace('("0.0.0.0", 8080)', f'("127.0.0.1", {port})'))
    proc = subprocess.Popen([sys.executable, "-B", str(code)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        base = f"http://127.0.0.1:{port}"

        def get(path, headers):
            req = urllib.request.Request(base + path, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        status, body = get("/stepcounts", {"X-Authenticated-Userid": "clark",
                                           "X-Authenticated-Scope": "step_counts",
                                           "X-Consumer-Username": "shoeflyshoe"})
        if status != 200 or body.get("user") != "clark" or body.get("scope") != "step_counts" \
                or body.get("consumer") != "shoeflyshoe" or not body.get("stepcounts"):
            problems.append(f"/stepcounts as clark -> {status} {body}")
        status, body = get("/stepon/stepcounts", {"X-Authenticated-Userid": "annie"})
        if status != 200 or body.get("user") != "annie":
            problems.append(f"unstripped path as annie -> {status} {body}")
        status, _ = get("/stepcounts", {})
        if status != 401:
            problems.append(f"/stepcounts without a user -> {status}, want 401")
    finally:
        stop(proc)
    fail_if(problems)
    record_property("summary", f"{len(docs)} objects valid; server checked for clark, annie, nobody")


def secret_values(docs, name):
    for d in docs:
        if d.get("kind") == "Secret" and d["metadata"]["name"] == name:
            values = {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
            values.update(d.get("stringData") or {})
            return values
    fail(f"examples/stepon has no Secret {name}")


def test_kind_flow_against_standalone(out_dir, record_property):
    """The kind script's flow, for real, with the cluster swapped for standalone: same
    manifests (backend URL moved to the Step On API's loopback port), same curl steps."""
    ensure_binary()
    for tool in ("curl", "jq"):
        if not shutil.which(tool):
            apt_install(tool)
    work = out_dir / "flow"
    manifests = work / "manifests"
    manifests.mkdir(parents=True)
    docs = []
    for path in sorted((EXAMPLES / "stepon").glob("*.yaml")):
        docs += docs_of(path.read_text())
    route = next(d for d in docs if d["kind"] == "ProtectedRoute")
    client = next(d for d in docs if d["kind"] == "OAuth2Client")
    consumer = next(d for d in docs if d["kind"] == "Consumer")
    upstream_port, http_port, tls_port = free_port(), free_port(), free_port()
    route["spec"]["backend"] = {"url": f"http://127.0.0.1:{upstream_port}"}
    (manifests / "stepon.yaml").write_text(yaml.safe_dump_all(docs))
    out = sh([ROOT / "e2e" / "kind.sh", "upstream-manifest"])
    server = next(d for d in docs_of(out.stdout) if d["kind"] == "ConfigMap")["data"]["server.py"]
    (work / "server.py").write_text(server.replace('("0.0.0.0", 8080)', f'("127.0.0.1", {upstream_port})'))
    creds = secret_values(docs, client["spec"]["credentialsSecretRef"]["name"])
    pk_ref = route["spec"]["oauth2"]["provisionKeySecretRef"]
    provision_key = secret_values(docs, pk_ref["name"])[pk_ref.get("key", "provision_key")]
    log = open(work / "standalone.log", "w+")
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-B", str(work / "server.py")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [BINARY, "standalone", "--manifests", manifests, "--listen", f"127.0.0.1:{http_port}",
             "--self-signed-tls", f"127.0.0.1:{tls_port}"],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, GATEHOUSE_LOG="warn", RUST_BACKTRACE="0")))
        wait_port(upstream_port, procs[0])
        wait_port(tls_port, procs[1], log)
        env = dict(os.environ,
                   GATEHOUSE_URL=f"https://localhost:{tls_port}",
                   PROVISION_KEY=provision_key,
                   CLIENT_ID=creds["client_id"],
                   CLIENT_SECRET=creds["client_secret"],
                   REDIRECT_URI=client["spec"]["redirectUris"][0],
                   ROUTE_PATH=route["spec"]["paths"][0],
                   CONSUMER_USERNAME=consumer["spec"].get("username", ""))
        run = sh([ROOT / "e2e" / "kind.sh", "flow"], env=env)
        passes = [l[len("PASS: "):] for l in run.stdout.splitlines() if l.startswith("PASS: ")]
        if run.returncode != 0:
            log.seek(0)
            fail("\n".join([f"PASS: {p}" for p in passes]) + "\n" + run.stderr.strip()
                              + "\nstandalone log:\n" + log.read()[-1500:])
        record_property("summary", f"{len(passes)} steps: " + "; ".join(passes))
    finally:
        stop(*procs)
