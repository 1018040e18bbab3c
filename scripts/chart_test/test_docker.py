"""The Docker image: the `.dockerignore` build context holds the whole workspace, and
the Dockerfile builds `--release --locked` as a numeric non-root user."""

import fnmatch
import json
import re
import shutil
import tempfile
from pathlib import Path

import yaml

from .common import CHART, ROOT, cargo_version, fail, fail_if, sh


def docker_context_files():
    """Files `docker build .` would send, per .dockerignore (allow-list form: `*` then `!path`)."""
    lines = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()]
    lines = [l for l in lines if l and not l.startswith("#")]
    if lines[0] != "*":
        fail(".dockerignore must start with `*` (allow-list)")
    allowed, denied = [], []
    for l in lines[1:]:
        (allowed if l.startswith("!") else denied).append(l.lstrip("!").strip("/"))
    tracked = sh(["git", "ls-files"], cwd=ROOT, check=True).stdout.split()

    def matches(path, pattern):
        return path == pattern or path.startswith(pattern + "/") or fnmatch.fnmatch(path, pattern)

    return [f for f in tracked
            if any(matches(f, a) for a in allowed) and not any(matches(f, d) for d in denied)]


INCLUDE = re.compile(
    r'include_(?:str|bytes)!\(\s*(?:concat!\(\s*env!\(\s*"CARGO_MANIFEST_DIR"\s*\)\s*,\s*)?"([^"]+)"')


def missing_includes(ctx):
    """Files that `include_str!`/`include_bytes!` in the workspace sources name but the
    build context lacks (cargo metadata does not see them; the compiler would)."""
    problems = []
    for rs in ctx.rglob("*.rs"):
        text = rs.read_text(errors="replace")
        for m in INCLUDE.finditer(text):
            rel = m.group(1)
            if "CARGO_MANIFEST_DIR" in text[m.start():m.end()]:
                manifest_dir = next(p for p in rs.parents if (p / "Cargo.toml").exists())
                path = manifest_dir / rel.lstrip("/")
            else:
                path = rs.parent / rel
            if not path.exists():
                problems.append(f"{rs.relative_to(ctx)} includes {rel}, which the context lacks")
    return problems


def test_docker_context_and_dockerfile(record_property):
    """Docker build context (.dockerignore) holds the whole workspace; Dockerfile builds --locked."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    problems = []
    builds = re.findall(r"^[^#\n]*cargo build[^\n]*", dockerfile, re.M)
    if not builds or not all("--locked" in b and "--release" in b for b in builds):
        problems.append(f"Dockerfile must run `cargo build --release --locked` (found {builds})")
    if not re.search(r"^USER\s+\d+(:\d+)?\s*$", dockerfile, re.M):
        problems.append("Dockerfile must switch to a numeric non-root USER")
    if not re.search(r'^ENTRYPOINT\s+\["/[^"]*gatehouse"\]', dockerfile, re.M):
        problems.append("Dockerfile ENTRYPOINT must be the gatehouse binary (exec form)")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    label_version = re.search(r"^ARG VERSION=(\S+)", dockerfile, re.M)
    if not label_version or label_version.group(1) != cargo_version():
        problems.append(f"Dockerfile ARG VERSION must be the crate version {cargo_version()}")
    # Same toolchain as the one scripts/test builds with, so the image compiles the same code.
    rust = re.search(r"^ARG RUST_VERSION=(\d+\.\d+)", dockerfile, re.M)
    local = re.search(r"rustc (\d+\.\d+)", sh(["rustc", "--version"]).stdout)
    if not rust or not local or rust.group(1) != local.group(1):
        problems.append(f"Dockerfile ARG RUST_VERSION ({rust and rust.group(1)}) must be the toolchain "
                        f"scripts/test uses ({local and local.group(1)})")
    if int(re.search(r"runAsUser: (\d+)", (CHART / "values.yaml").read_text()).group(1)) != \
            int(re.search(r"^USER\s+(\d+)", dockerfile, re.M).group(1)):
        problems.append("values.yaml podSecurityContext.runAsUser differs from the Dockerfile USER")
    files = docker_context_files()
    with tempfile.TemporaryDirectory() as ctx:
        for f in files:
            dst = Path(ctx) / f
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst)
        # cargo resolves the whole workspace here exactly as in the image; --locked fails
        # if Cargo.lock would change. (It may fetch crates for other platforms once.)
        out = sh(["cargo", "metadata", "--locked", "--format-version", "1"], cwd=ctx)
        if out.returncode != 0:
            problems.append(f"cargo metadata in the build context failed:\n{out.stderr.strip()[-1500:]}")
        else:
            meta = json.loads(out.stdout)
            members = set(meta["workspace_members"])
            for pkg in meta["packages"]:
                if pkg["id"] not in members:
                    continue
                for target in pkg["targets"]:
                    if not Path(target["src_path"]).exists():
                        problems.append(f"{pkg['name']}: {target['src_path']} missing from the context")
            problems += missing_includes(Path(ctx))
    fail_if(problems)
    record_property("summary", f"{len(files)} files in the context; chart appVersion {chart['appVersion']}")
