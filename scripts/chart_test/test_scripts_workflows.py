"""Shell scripts pass shellcheck, and the GitHub workflows are valid and run the two
test entry points."""

import yaml

from .common import ROOT, VENV, fail_if, sh


def test_shellcheck_and_workflows(record_property):
    """Shell scripts (e2e/kind.sh, e2e/kube/*, scripts/*) pass shellcheck; GitHub workflows
    valid against their schema."""
    problems = []
    scripts = [ROOT / "e2e" / "kind.sh", ROOT / "scripts" / "kube-tools", ROOT / "scripts" / "test"]
    scripts += [ROOT / "e2e" / "kube" / name for name in ("build", "up", "down")]
    out = sh([VENV / "bin" / "shellcheck", "--severity=style", *scripts])
    if out.returncode != 0:
        problems.append(out.stdout.strip() or out.stderr.strip())
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))
    if not workflows:
        problems.append("no .github/workflows/*.yaml")
    out = sh([VENV / "bin" / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows])
    if out.returncode != 0:
        problems.append(out.stdout.strip() + out.stderr.strip())
    for wf in workflows:
        steps = [st.get("run", "") for job in yaml.safe_load(wf.read_text())["jobs"].values()
                 for st in job["steps"]]
        if wf.name == "ci.yaml" and "scripts/test" not in steps:
            problems.append("ci.yaml must run scripts/test")
        if wf.name == "e2e.yaml" and "e2e/kind.sh" not in steps:
            problems.append("e2e.yaml must run e2e/kind.sh")
    fail_if(problems)
    record_property("summary", f"shellcheck clean; {len(workflows)} workflows: "
                               + ", ".join(w.name for w in workflows))
