"""What the chart grants and wires: the controller's RBAC against our CRDs, and the
rendered objects' references to each other (Services, HPA, PDBs, bindings, probes)."""

from .common import OUR_GROUP, fail, fail_if, load_crds


def test_controller_rbac_covers_every_crd(rendered, record_property):
    """Controller RBAC covers every CRD plural and its status."""
    crds = load_crds()
    if not crds:
        fail("no CRDs generated yet in crds/yaml/")
    plurals = {c["spec"]["names"]["plural"] for c in crds.values()}
    problems = []
    for scenario, (_, docs) in rendered.items():
        roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")
                 and d["metadata"]["name"].endswith("-controller")]
        if not roles:
            problems.append(f"[{scenario}] no controller Role/ClusterRole")
        for role in roles:
            granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
                       for r in rule["resources"] for v in rule["verbs"]}
            for plural in sorted(plurals):
                for verb in ("get", "list", "watch"):
                    if (OUR_GROUP, plural, verb) not in granted:
                        problems.append(f"[{scenario}] {role['kind']} lacks {verb} {plural}")
                if (OUR_GROUP, f"{plural}/status", "patch") not in granted:
                    problems.append(f"[{scenario}] {role['kind']} lacks patch {plural}/status")
            extra = {r for (g, r, _) in granted if g == OUR_GROUP} - plurals - {f"{p}/status" for p in plurals}
            if extra:
                problems.append(f"[{scenario}] rules name resources no CRD defines: {sorted(extra)}")
    fail_if(problems)
    record_property("summary", f"plurals: {', '.join(sorted(plurals))}")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_rendered_objects_reference_each_other(rendered, record_property):
    """Rendered objects reference each other correctly (Services, HPA, PDB, RBAC, ServiceAccounts)."""
    problems = []
    for scenario, (_, docs) in rendered.items():
        by_kind = {}
        for d in docs:
            by_kind.setdefault(d["kind"], []).append(d)
        deployments = by_kind.get("Deployment", [])

        def pod_ports(dep):
            ports = {}
            for c in dep["spec"]["template"]["spec"]["containers"]:
                for p in c.get("ports", []):
                    ports[p.get("name")] = p["containerPort"]
                    ports[p["containerPort"]] = p["containerPort"]
            return ports

        for svc in by_kind.get("Service", []):
            sel = svc["spec"].get("selector", {})
            targets = [d for d in deployments if selects(sel, d["spec"]["template"]["metadata"]["labels"])]
            if not targets:
                problems.append(f"[{scenario}] Service {svc['metadata']['name']} selects no Deployment")
            for dep in targets:
                for port in svc["spec"]["ports"]:
                    if port["targetPort"] not in pod_ports(dep):
                        problems.append(f"[{scenario}] Service {svc['metadata']['name']} targets port "
                                        f"{port['targetPort']!r} that {dep['metadata']['name']} does not expose")
        for dep in deployments:
            spec = dep["spec"]
            if not selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]):
                problems.append(f"[{scenario}] {dep['metadata']['name']}: selector does not match its pods")
            sa = spec["template"]["spec"].get("serviceAccountName")
            if sa and sa not in {s["metadata"]["name"] for s in by_kind.get("ServiceAccount", [])}:
                problems.append(f"[{scenario}] {dep['metadata']['name']}: ServiceAccount {sa} not rendered")
            for c in spec["template"]["spec"]["containers"]:
                for probe in ("livenessProbe", "readinessProbe"):
                    port = (c.get(probe, {}).get("httpGet") or c.get(probe, {}).get("tcpSocket") or {}).get("port")
                    if port is None:
                        problems.append(f"[{scenario}] {dep['metadata']['name']}/{c['name']}: no {probe}")
                    elif port not in pod_ports(dep):
                        problems.append(f"[{scenario}] {dep['metadata']['name']}/{c['name']}: {probe} port "
                                        f"{port!r} not exposed")
                sc = c.get("securityContext", {})
                if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                        and "ALL" in sc.get("capabilities", {}).get("drop", [])):
                    problems.append(f"[{scenario}] {dep['metadata']['name']}/{c['name']}: securityContext "
                                    f"must set readOnlyRootFilesystem, no privilege escalation, drop ALL")
                if not c.get("resources", {}).get("requests"):
                    problems.append(f"[{scenario}] {dep['metadata']['name']}/{c['name']}: no resource requests")
            if not spec["template"]["spec"].get("securityContext", {}).get("runAsNonRoot"):
                problems.append(f"[{scenario}] {dep['metadata']['name']}: pod must set runAsNonRoot")
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        for hpa in by_kind.get("HorizontalPodAutoscaler", []):
            ref = hpa["spec"]["scaleTargetRef"]
            if (ref["kind"], ref["name"]) not in names:
                problems.append(f"[{scenario}] HPA targets missing {ref['kind']}/{ref['name']}")
            dep = next(d for d in deployments if d["metadata"]["name"] == ref["name"])
            if "replicas" in dep["spec"]:
                problems.append(f"[{scenario}] {ref['name']} sets replicas although an HPA scales it")
        for pdb in by_kind.get("PodDisruptionBudget", []):
            sel = pdb["spec"]["selector"]["matchLabels"]
            if not any(selects(sel, d["spec"]["template"]["metadata"]["labels"]) for d in deployments):
                problems.append(f"[{scenario}] PDB {pdb['metadata']['name']} selects no pods")
        for b in by_kind.get("RoleBinding", []) + by_kind.get("ClusterRoleBinding", []):
            if (b["roleRef"]["kind"], b["roleRef"]["name"]) not in names:
                problems.append(f"[{scenario}] {b['kind']} {b['metadata']['name']} refers to a missing role")
            if b["kind"] == "RoleBinding" and b["roleRef"]["kind"] == "Role":
                role = next(r for r in by_kind["Role"] if r["metadata"]["name"] == b["roleRef"]["name"])
                if role["metadata"].get("namespace") != b["metadata"].get("namespace"):
                    problems.append(f"[{scenario}] RoleBinding {b['metadata']['name']} in another namespace than its Role")
        for sm in by_kind.get("ServiceMonitor", []):
            sel = sm["spec"]["selector"]["matchLabels"]
            svcs = [s for s in by_kind.get("Service", []) if selects(sel, s["metadata"]["labels"])]
            if len(svcs) != 1:
                problems.append(f"[{scenario}] ServiceMonitor {sm['metadata']['name']} selects {len(svcs)} Services")
            for s in svcs:
                for ep in sm["spec"]["endpoints"]:
                    if ep["port"] not in {p["name"] for p in s["spec"]["ports"]}:
                        problems.append(f"[{scenario}] ServiceMonitor port {ep['port']} not on {s['metadata']['name']}")
    fail_if(problems)
    record_property("summary", f"{len(rendered)} value sets")
