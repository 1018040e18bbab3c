"""The chart itself: versions, `helm lint`, rendering every value set, refusing bad
values, and every rendered object against the Kubernetes schemas."""

import yaml

from .common import (CHART, KUBE_VERSIONS, NO_SCHEMA_OK, RENDER_KUBE_VERSION, SCENARIOS,
                     cargo_version, fail, fail_if, kubernetes_validate,
                     kubernetes_validate_version, sh, values_args)


def test_chart_versions_match_crate(record_property):
    """Chart version and appVersion match the crate version (Cargo.toml)."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    crate = cargo_version()
    fail_if([
        f"Chart.yaml {key} is {chart.get(key)!r}, crate version is {crate!r}"
        for key in ("version", "appVersion")
        if str(chart.get(key)) != crate
    ])
    record_property("summary", crate)


def test_helm_lint_strict(helm, record_property):
    """helm lint --strict, every value set."""
    problems = []
    for scenario in SCENARIOS:
        out = sh([helm, "lint", "--strict", "--kube-version", RENDER_KUBE_VERSION, CHART,
                  *values_args(scenario)])
        if out.returncode != 0:
            problems.append(f"[{scenario}] {out.stdout.strip()} {out.stderr.strip()}")
    fail_if(problems)
    record_property("summary", f"{len(SCENARIOS)} value sets: {', '.join(SCENARIOS)}")


def test_every_value_set_renders_with_notes(helm, rendered, record_property):
    """helm template renders every value set (the `rendered` fixture); NOTES.txt renders."""
    summary = []
    for scenario in SCENARIOS:
        summary.append(f"{scenario}: {len(rendered[scenario][1])} objects")
        # helm template skips NOTES.txt; a client-side dry-run install renders it.
        notes = sh([helm, "install", "gh", CHART, "--dry-run=client", "--namespace",
                    "gatehouse-system", *values_args(scenario)])
        if notes.returncode != 0 or "NOTES:" not in notes.stdout:
            fail(f"[{scenario}] NOTES.txt did not render: {notes.stderr.strip()}")
    record_property("summary", ", ".join(summary))


def test_bad_values_refused(helm, record_property):
    """helm template refuses bad values (template guards and values.schema.json)."""
    bad = {
        "redis.url=redis://:secret@redis:6379": "must not carry credentials",
        "redis.url=http://redis:6379": "must start with redis://",
        "rbac.scope=everywhere": "/rbac/scope",
        "proxy.shutdownGraceSeconds=30": "must be below proxy.terminationGracePeriodSeconds",
        "proxy.service.tpye=NodePort": "tpye",
        "proxy.service.type=Ingress": "/proxy/service/type",
        "controller.replicas=two": "/controller/replicas",
    }
    problems = []
    for setting, expected in bad.items():
        out = sh([helm, "template", "gh", CHART, "--kube-version", RENDER_KUBE_VERSION,
                  "--set", setting])
        if out.returncode == 0 or expected not in out.stderr:
            problems.append(f"--set {setting}: expected a failure mentioning {expected!r}, "
                            f"got rc={out.returncode} {out.stderr.strip()[:200]}")
    fail_if(problems)
    record_property("summary", f"{len(bad)} bad value sets refused")


def test_rendered_objects_valid_for_kubernetes(rendered, record_property):
    """kubernetes-validate --strict on every rendered object (and the chart's CRDs)."""
    if not rendered:
        fail("nothing rendered")
    files = [path for path, _ in rendered.values()]
    files += sorted((CHART / "crds").glob("*.yaml"))
    problems, passed = kubernetes_validate(files)
    total = sum(len(docs) for _, docs in rendered.values())
    skipped = sum(1 for _, docs in rendered.values() for d in docs
                  if (d.get("apiVersion"), d.get("kind")) in NO_SCHEMA_OK)
    if passed < total - skipped:
        problems.append(f"only {passed} of {total - skipped} objects reported as passed")
    fail_if(problems)
    record_property("summary", f"{passed} objects valid against the Kubernetes "
                               f"{' and '.join(KUBE_VERSIONS)} schemas (kubernetes-validate "
                               f"{kubernetes_validate_version()})"
                               + (f"; {skipped} Prometheus Operator object(s) have no bundled schema"
                                  if skipped else ""))
