"""The chart's values reference, generated from values.yaml's `# --` comments: the table
in docs/install.md (`scripts/chart-test --values-table`) and values.schema.json
(`scripts/chart-test --values-schema`)."""

import json
import re

import yaml

from .common import CHART, fail


def values_reference():
    """[(dotted key, default, description)] from values.yaml's `# --` comments. A key with
    a comment is one row (its whole subtree is the default); keys below it are not."""
    rows, stack, pending, problems = [], [], None, []
    lines = (CHART / "values.yaml").read_text().splitlines()
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = stripped[4:].strip()
            continue
        if stripped.startswith("#") and pending is not None:
            pending += " " + stripped[1:].strip()
            continue
        m = re.match(r"^(\s*)([A-Za-z0-9_]+):(.*)$", line)
        if not m:
            if stripped and not stripped.startswith(("-", "#")):
                pending = None
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k, _ in stack] + [key])
        documented_above = any(doc for _, _, doc in stack)
        if pending is not None:
            rows.append((path, pending))
        elif rest and not documented_above:
            problems.append(f"values.yaml: {path} has no `# --` description")
        stack.append((indent, key, pending is not None))
        pending = None
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    table = []
    for path, doc in rows:
        node = values
        for part in path.split("."):
            node = node[part]
        default = json.dumps(node, separators=(",", ":"))
        table.append((path, default, doc))
    return table, problems


ENUMS = {
    "rbac.scope": ["cluster", "namespace"],
    "proxy.service.type": ["ClusterIP", "NodePort", "LoadBalancer"],
    "proxy.service.externalTrafficPolicy": ["", "Cluster", "Local"],
    "image.pullPolicy": ["Always", "IfNotPresent", "Never"],
    "redis.bundled.image.pullPolicy": ["Always", "IfNotPresent", "Never"],
}


def values_schema():
    """JSON Schema for values.yaml, derived from it: documented objects with a `{...}`
    default are free-form (labels, resources, affinity); every other object is closed,
    so a misspelt value fails `helm install` instead of being ignored."""
    table, _ = values_reference()
    documented = {path for path, _, _ in table}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    docs = {path: doc for path, _, doc in table}

    def schema(value, path):
        if path in ENUMS:
            out = {"enum": ENUMS[path]}
        elif isinstance(value, bool):
            out = {"type": "boolean"}
        elif isinstance(value, int):
            out = {"type": "integer"}
        elif isinstance(value, str):
            # Empty means "the binary's/chart's default"; numbers are accepted unquoted.
            out = {"type": ["string", "integer"]} if value == "" else {"type": "string"}
        elif isinstance(value, list):
            out = {"type": "array"}
        elif isinstance(value, dict) and path in documented and (not value or path.endswith(
                ("resources", "SecurityContext", "securityContext"))):
            out = {"type": "object"}
        elif isinstance(value, dict):
            out = {
                "type": "object",
                "additionalProperties": False,
                "properties": {k: schema(v, f"{path}.{k}" if path else k) for k, v in value.items()},
            }
        else:
            fail(f"values.yaml: {path}: unsupported default {value!r}")
        if path in docs:
            out["description"] = docs[path]
        return out

    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": "Gatehouse chart values",
            **schema(values, "")}


def values_schema_text():
    return json.dumps(values_schema(), indent=2) + "\n"


def values_table_markdown():
    table, _ = values_reference()
    out = ["| Value | Default | Description |", "| --- | --- | --- |"]
    for path, default, doc in table:
        cells = [f"`{path}`", f"`{default}`", doc]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"
