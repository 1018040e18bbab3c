"""Our CRDs: the chart carries the generated ones, and every example custom resource is
valid against its CRD's schema as the API server applies it."""

import json

import yaml

from .common import (CHART, CRD_DIR, EXAMPLES, OUR_GROUP, ROOT, VENV, docs_of, fail, fail_if,
                     kubernetes_validate, load_crds, sh)


def test_chart_crds_are_the_generated_ones(record_property):
    """Chart crds/ is identical to the generated crds/yaml/."""
    generated = {p.name: p.read_bytes() for p in CRD_DIR.glob("*.yaml")} if CRD_DIR.exists() else {}
    in_chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    if not generated:
        fail(f"no generated CRDs in {CRD_DIR.relative_to(ROOT)}")
    problems = []
    for name in sorted(set(generated) | set(in_chart)):
        if name not in in_chart:
            problems.append(f"{name}: missing from charts/gatehouse/crds/")
        elif name not in generated:
            problems.append(f"{name}: in the chart but not generated in crds/yaml/")
        elif generated[name] != in_chart[name]:
            problems.append(f"{name}: differs from crds/yaml/{name}")
    if problems:
        problems.append("fix: cp crds/yaml/*.yaml charts/gatehouse/crds/")
    fail_if(problems)
    record_property("summary", f"{len(generated)} CRDs: {', '.join(sorted(generated))}")


def strict_schema(schema):
    """The CRD schema as the API server applies it with strict field validation
    (kubectl's default): unknown fields are errors unless the schema preserves them."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    if out.pop("nullable", False) and "type" in out:
        # OpenAPI's `nullable` is JSON Schema's null type.
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def object_schema(crd, version):
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = json.loads(json.dumps(v["schema"]["openAPIV3Schema"]))
            schema.setdefault("properties", {})
            # The API server checks these itself; an example must still name them right.
            schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version}"}
            schema["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
            schema["properties"]["metadata"] = {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                    "namespace": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                "additionalProperties": False,
            }
            return {"$schema": "http://json-schema.org/draft-07/schema#", **strict_schema(schema)}
    return None


def test_examples_valid_against_crd_schemas(out_dir, record_property):
    """Example custom resources valid against our CRD schemas (check-jsonschema), other
    example objects against Kubernetes."""
    crds = load_crds()
    if not crds:
        fail("no CRDs generated yet in crds/yaml/")
    ours, others, problems = {}, [], []
    files = sorted(EXAMPLES.glob("**/*.yaml")) + sorted(EXAMPLES.glob("**/*.yml"))
    for path in files:
        for i, doc in enumerate(docs_of(path.read_text())):
            api = str(doc.get("apiVersion", ""))
            if api.split("/")[0] == OUR_GROUP:
                ours.setdefault((api, doc.get("kind")), []).append((path, i, doc))
            else:
                others.append((path, i, doc))
    if not ours:
        fail(f"no {OUR_GROUP} objects found under examples/")
    schemas_dir = out_dir / "schemas"
    schemas_dir.mkdir(exist_ok=True)
    count = 0
    for (api, kind), items in sorted(ours.items()):
        crd = crds.get(kind)
        schema = crd and object_schema(crd, api.split("/", 1)[1])
        if schema is None:
            problems += [f"{p.relative_to(ROOT)}#{i}: no CRD serves {api} {kind}" for p, i, _ in items]
            continue
        schema_file = schemas_dir / f"{kind}.json"
        schema_file.write_text(json.dumps(schema, indent=1))
        instances = []
        for path, i, doc in items:
            inst = schemas_dir / f"{kind}-{path.stem}-{i}.json"
            inst.write_text(json.dumps(doc))
            instances.append((inst, f"{path.relative_to(ROOT)}#{i}"))
        out = sh([VENV / "bin" / "check-jsonschema", "--schemafile", schema_file,
                  *[inst for inst, _ in instances]])
        if out.returncode != 0:
            text = out.stdout + out.stderr
            for inst, label in instances:
                text = text.replace(str(inst), label)
            problems.append(f"{kind}:\n{text.strip()}")
        count += len(items)
    if others:
        other_file = out_dir / "examples-other.yaml"
        other_file.write_text(yaml.safe_dump_all([d for _, _, d in others]))
        k8s_problems, _ = kubernetes_validate([other_file], allow_no_schema=set())
        problems += k8s_problems
    kinds = ", ".join(f"{k} x{len(v)}" for (_, k), v in sorted(ours.items()))
    fail_if(problems)
    record_property("summary", f"{count} custom resources ({kinds}); {len(others)} other objects; "
                               f"unknown fields rejected as with kubectl's strict field validation")
