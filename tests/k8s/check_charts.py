#!/usr/bin/python3
"""k8s tier, no root: renders every chart of examples/kubernetes/ (defaults, and each `helm` command of its
README) with tests/k8s/helm_template.py, checks every manifest against the Kubernetes object schema
(tests/k8s/kube_schema.py) and the objects of each chart against each other (tests/k8s/manifests.py).
Also shows that the checks can fail: a few broken renderings must each be refused."""
import copy
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helm_template  # noqa: E402
import kube_schema  # noqa: E402
import manifests  # noqa: E402
from manifests import EXAMPLES  # noqa: E402

CHECKS = {"multi-node": manifests.check_multi_node, "single-node": manifests.check_single_node,
          "test": manifests.check_test_job}


def problems_of(chart_dir, objects, values):
    problems = []
    for source, obj in objects:
        problems += [f"{source}: {p}" for p in kube_schema.validate(obj)]
    if not problems:
        problems += CHECKS[os.path.basename(chart_dir)](objects, values)
    return problems


def render(chart_dir, release, sets=(), set_jsons=()):
    objects = helm_template.render_objects(chart_dir, release, "llm", sets=sets, set_jsons=set_jsons)
    values = helm_template.chart_values(chart_dir, sets=sets, set_jsons=set_jsons)
    return objects, values


def main():
    failures = []
    cases = [(r, c, s, j, "README") for r, c, s, j in manifests.readme_helm_commands(os.path.join(EXAMPLES, "README.md"))]
    charts_in_readme = {os.path.basename(c) for _, c, _, _, _ in cases}
    if charts_in_readme != set(CHECKS):
        failures.append(f"README.md installs {sorted(charts_in_readme)}, not every chart {sorted(CHECKS)}")
    cases += [("rankserve", os.path.join(EXAMPLES, chart), [], [], "defaults") for chart in CHECKS]
    servers = {r for r, c, _, _, _ in cases if os.path.basename(c) != "test"}
    for release, chart_dir, sets, set_jsons, origin in cases:
        label = f"{os.path.basename(chart_dir)} ({origin}: {release} {' '.join(sets + set_jsons)})"
        try:
            objects, values = render(chart_dir, release, sets, set_jsons)
            problems = problems_of(chart_dir, objects, values)
            if os.path.basename(chart_dir) == "test":
                for server in sorted(servers):
                    problems += manifests.check_test_job(objects, values, server)
        except (helm_template.TemplateError, manifests.ManifestError, KeyError, yaml.YAMLError) as e:
            problems = [f"{type(e).__name__}: {e}"]
        print(f"{'FAIL' if problems else 'ok  '} {label}: {len(objects) if not problems else 0} objects")
        failures += [f"{label}: {p}" for p in problems]

    for file in sorted(os.listdir(EXAMPLES)):
        if file.endswith(".yaml"):
            with open(os.path.join(EXAMPLES, file)) as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
            problems = [p for d in docs for p in kube_schema.validate(d)]
            if [d["kind"] for d in docs] not in (["PersistentVolumeClaim"], ["PersistentVolume"]):
                problems.append(f"expected one PersistentVolume or PersistentVolumeClaim, found {[d['kind'] for d in docs]}")
            elif docs[0]["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" not in docs[0]["spec"]["accessModes"]:
                problems.append("the claim is mounted by every pod of the StatefulSet: it needs ReadWriteMany")
            print(f"{'FAIL' if problems else 'ok  '} {file}")
            failures += [f"{file}: {p}" for p in problems]

    failures += refusals()
    for f in failures:
        print(f"k8s: {f}", file=sys.stderr)
    return 1 if failures else 0


def refusals():
    """Each broken rendering must be refused: the checks above can fail."""
    multi = os.path.join(EXAMPLES, "multi-node")
    objects, values = render(multi, "rankserve")

    def mutated(change, base=objects):
        copied = copy.deepcopy(base)
        change({o["kind"] + "/" + o["metadata"]["name"]: o for _, o in copied})
        return copied

    def container(by_name):
        return by_name["StatefulSet/rankserve"]["spec"]["template"]["spec"]["containers"][0]

    broken = {
        "a port as a string": mutated(lambda o: container(o)["ports"][0].update(containerPort="8000")),
        "an unknown field": mutated(lambda o: o["StatefulSet/rankserve"]["spec"].update(podManagement="Parallel")),
        "service links": mutated(lambda o: o["StatefulSet/rankserve"]["spec"]["template"]["spec"].pop("enableServiceLinks")),
        "OrderedReady pods": mutated(lambda o: o["StatefulSet/rankserve"]["spec"].update(podManagementPolicy="OrderedReady")),
        "a headless Service hiding not-ready pods":
            mutated(lambda o: o["Service/rankserve-headless"]["spec"].pop("publishNotReadyAddresses")),
        "--gpus unlike the GPU resource": mutated(lambda o: container(o)["resources"]["limits"].update({"nvidia.com/gpu": 2})),
        "a probe on another pod": mutated(lambda o: container(o)["readinessProbe"]["exec"]["command"].__setitem__(3, "http://rankserve-1.rankserve-headless:8000")),
        "a Service port no container has": mutated(lambda o: o["Service/rankserve"]["spec"]["ports"][0].update(targetPort=9000)),
        "a writable claim without downloadDir": mutated(lambda o: container(o)["volumeMounts"][0].update(readOnly=False)),
    }
    broken = {what: (objs, values) for what, objs in broken.items()}
    # (the README's hub-id install renders with downloadDir and passes main()'s checks)
    cached, cached_values = render(multi, "rankserve", ["statefulset.downloadDir=/mnt/data/hub"])
    broken["a read-only claim under downloadDir"] = (
        mutated(lambda o: container(o)["volumeMounts"][0].update(readOnly=True), cached), cached_values)
    failures = []
    for what, (objs, vals) in broken.items():
        if not problems_of(multi, objs, vals):
            failures.append(f"the checks accept {what}")
    for template, why in [("x: {{ .Values.nope }}\n", "an undefined value"), ("x: {{ include \"a\" . }}\n", "a function outside the subset"),
                          ("{{ if .Values.a }}\n", "an if without end")]:
        try:
            helm_template.render_text(template, {"Values": {"a": 1}}, "t.yaml")
            failures.append(f"the renderer accepts {why}")
        except helm_template.TemplateError:
            pass
    trimmed = helm_template.render_text("a:\n{{- if .Values.a }}\n  b: {{ .Values.a | quote }}\n{{- end }}\n", {"Values": {"a": 1}}, "t")
    if trimmed != 'a:\n  b: "1"\n':
        failures.append(f"whitespace trimming renders {trimmed!r}")
    print(f"{'FAIL' if failures else 'ok  '} {len(broken) + 4} broken renderings refused")
    return failures


if __name__ == "__main__":
    sys.exit(main())
