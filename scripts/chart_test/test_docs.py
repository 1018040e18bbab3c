"""docs/install.md against the chart: the values table and values.schema.json are the
generated ones, its YAML snippets parse, and its Argo CD health-check Lua gives the
expected status."""

import json
import re

import yaml

from .common import CHART, INSTALL_DOC, ROOT, fail, fail_if
from .values import values_reference, values_schema_text, values_table_markdown


def doc_blocks(text, lang):
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


ARGO_CASES = [
    # (object, expected Argo CD status)
    ({"metadata": {"generation": 1}}, "Progressing"),
    ({"metadata": {"generation": 2}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "Ready", "message": "ok", "observedGeneration": 2}]}}, "Healthy"),
    ({"metadata": {"generation": 3}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "Ready", "observedGeneration": 2}]}}, "Progressing"),
    ({"metadata": {"generation": 1}, "status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "ConsumerNotFound", "message": "no consumer",
         "observedGeneration": 1}]}}, "Degraded"),
    ({"metadata": {"generation": 1}, "status": {"conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "Pending"}]}}, "Progressing"),
]


def test_install_docs_values_and_argo_health(record_property):
    """Install docs and values.schema.json match values.yaml; YAML snippets parse; Argo CD
    health Lua behaves."""
    problems = []
    table, undocumented = values_reference()
    problems += undocumented
    if not INSTALL_DOC.exists():
        fail(f"{INSTALL_DOC.relative_to(ROOT)} missing")
    text = INSTALL_DOC.read_text()
    schema_file = CHART / "values.schema.json"
    if not schema_file.exists() or schema_file.read_text() != values_schema_text():
        problems.append("charts/gatehouse/values.schema.json is stale: regenerate it with "
                        "`scripts/chart-test --values-schema`")
    if values_table_markdown() not in text:
        problems.append("the values table in docs/install.md is stale: "
                        "regenerate it with `scripts/chart-test --values-table`")
    yaml_blocks = doc_blocks(text, "yaml")
    for i, block in enumerate(yaml_blocks):
        try:
            list(yaml.safe_load_all(block))
        except yaml.YAMLError as e:
            problems.append(f"yaml block {i} does not parse: {e}")
    # The Argo CD health check: the argocd-cm block names the three kinds; run its Lua.
    from lupa import lua51  # Argo CD runs gopher-lua, a Lua 5.1

    scripts = {}
    for block in yaml_blocks:
        for doc in yaml.safe_load_all(block):
            data = (doc or {}).get("data", {}) if isinstance(doc, dict) else {}
            for key, value in data.items():
                if key.startswith("resource.customizations.health.gatehouse.dev_"):
                    scripts[key.rsplit("_", 1)[1]] = value
    if set(scripts) != {"Consumer", "OAuth2Client", "ProtectedRoute"}:
        problems.append(f"argocd-cm health checks for the three kinds expected, found {sorted(scripts)}")
    cases = 0
    for kind, script in scripts.items():
        for obj, want in ARGO_CASES:
            lua = lua51.LuaRuntime(unpack_returned_tuples=True)
            lua.globals().obj = to_lua(lua, obj)
            hs = lua.execute(script)
            got = hs["status"] if hs is not None else None
            cases += 1
            if got != want or not hs["message"]:
                problems.append(f"{kind}: {json.dumps(obj)} -> {got!r} ({hs and hs['message']!r}), want {want}")
    fail_if(problems)
    record_property("summary", f"{len(table)} values documented; {len(yaml_blocks)} YAML blocks; "
                               f"{cases} health-check cases")


def to_lua(lua, value):
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value
