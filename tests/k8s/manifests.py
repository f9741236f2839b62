"""Reading rendered manifests: the objects of a chart by kind, a container's flags and ports, and the checks that
the objects of one chart agree with each other (what the API server's schema cannot see)."""
import os
import re
import shlex
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(SOURCE_DIR, "examples", "kubernetes")


class ManifestError(Exception):
    pass


def one(objects, kind, name=None):
    """The single object of `kind` (and `name`) among [(source, object)]."""
    found = [o for _, o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    if len(found) != 1:
        raise ManifestError(f"expected one {kind}{' ' + name if name else ''}, the chart renders {len(found)}")
    return found[0]


def all_of(objects, kind):
    return [o for _, o in objects if o["kind"] == kind]


def container(workload, name=None):
    containers = workload["spec"]["template"]["spec"]["containers"]
    if name is None:
        if len(containers) != 1:
            raise ManifestError(f"{workload['metadata']['name']}: expected one container, found {len(containers)}")
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def flag(c, name):
    """The value after `name` in the container's args (None when absent)."""
    args = c.get("args", [])
    for i, arg in enumerate(args):
        if arg == name:
            if i + 1 >= len(args):
                raise ManifestError(f"{c['name']}: {name} is the last argument")
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def container_port(c, port):
    """A Service targetPort or probe port (a number or a port name) as the container's port number."""
    for p in c.get("ports", []):
        if port in (p["containerPort"], p.get("name")):
            return p["containerPort"]
    raise ManifestError(f"container {c['name']}: no port {port!r} (its ports: {c.get('ports', [])})")


def probe_url(probe):
    """The URL an exec probe of `rankserve-client --wait-only --url URL` asks."""
    command = probe.get("exec", {}).get("command", [])
    if command[:2] != ["rankserve-client", "--wait-only"] or "--url" not in command:
        raise ManifestError(f"probe {command} is not rankserve-client --wait-only --url ...")
    return urlsplit(command[command.index("--url") + 1])


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_workload_basics(w, problems):
    pod = w["spec"]["template"]
    if not selects(w["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"]):
        problems.append(f"{w['kind']} {w['metadata']['name']}: selector does not match the pod template's labels")
    c = container(w)
    if c.get("command") != ["rankserve"] or not c.get("args") or c["args"][0] != "serve":
        problems.append(f"{c['name']}: expected command [rankserve] and args starting with serve")
    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    shutdown = int(flag(c, "--shutdown-timeout") or 30)
    if shutdown >= grace:
        problems.append(f"--shutdown-timeout {shutdown} is not below terminationGracePeriodSeconds {grace} "
                        "(the kubelet would kill the drain)")
    if pod["spec"].get("enableServiceLinks", True):
        problems.append("enableServiceLinks must be false: the kubelet's <SERVICE>_* variables of a Service named "
                        "rankserve are RANKSERVE_*, which rankserve reads as flags")
    gpus = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
    if str(gpus) != flag(c, "--gpus"):
        problems.append(f"{c['name']}: nvidia.com/gpu limit {gpus} differs from --gpus {flag(c, '--gpus')}")
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    for m in c.get("volumeMounts", []):
        if m["name"] not in volumes:
            problems.append(f"{c['name']}: volumeMount {m['name']} names no volume")
    for name in volumes:
        if name not in {m["name"] for m in c.get("volumeMounts", [])}:
            problems.append(f"volume {name} is mounted nowhere")
    return c, volumes


def check_service_ports(service, c, problems):
    for p in service["spec"]["ports"]:
        try:
            container_port(c, p.get("targetPort", p["port"]))
        except ManifestError as e:
            problems.append(f"Service {service['metadata']['name']} port {p['name']}: {e}")


def check_download_dir(c, volumes, v, problems):
    """downloadDir: --download-dir on the claim, mounted writable; unset: no flag, the claim read-only."""
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    if "model" not in volumes:
        if v["downloadDir"]:
            problems.append(f"downloadDir {v['downloadDir']!r} without a claim to hold it")
        return
    mount = mounts.get("model", {})
    if flag(c, "--download-dir") != (v["downloadDir"] or None):
        problems.append(f"--download-dir {flag(c, '--download-dir')} is not downloadDir {v['downloadDir']!r}")
    if v["downloadDir"]:
        if not (v["downloadDir"] + "/").startswith(mount.get("mountPath", "") + "/"):
            problems.append(f"downloadDir {v['downloadDir']} is not on the claim at {mount.get('mountPath')}")
        if mount.get("readOnly"):
            problems.append("downloadDir is set but the claim is mounted read-only: the download cannot be written")
    elif not mount.get("readOnly"):
        problems.append("the claim is mounted writable though no downloadDir is set")


def check_multi_node(objects, values):
    """Problems of a rendered multi-node chart, given the values it was rendered with."""
    problems = []
    sts = one(objects, "StatefulSet")
    s = values["statefulset"]
    c, volumes = check_workload_basics(sts, problems)
    name = sts["metadata"]["name"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    spec = sts["spec"]
    if spec["replicas"] != s["numOfNodes"] or flag(c, "--nodes") != str(s["numOfNodes"]):
        problems.append(f"replicas {spec['replicas']} and --nodes {flag(c, '--nodes')} must both be numOfNodes {s['numOfNodes']}")
    if flag(c, "--gpus") != str(s["numOfGPUs"]):
        problems.append(f"--gpus {flag(c, '--gpus')} is not numOfGPUs {s['numOfGPUs']}")
    world = s["numOfNodes"] * s["numOfGPUs"]
    if s["tp"] and s["pp"] and world % (s["tp"] * s["pp"]):
        problems.append(f"tp {s['tp']} x pp {s['pp']} does not divide numOfNodes x numOfGPUs = {world}")
    if spec.get("podManagementPolicy") != "Parallel":
        problems.append("podManagementPolicy must be Parallel (rank 0 is ready only once every pod runs)")
    headless = one(objects, "Service", spec["serviceName"])
    if headless["spec"].get("clusterIP") != "None" or not headless["spec"].get("publishNotReadyAddresses"):
        problems.append(f"Service {spec['serviceName']} must be headless and publish not-ready addresses "
                        "(pods find rank 0 by DNS before it is ready)")
    if not selects(headless["spec"]["selector"], labels):
        problems.append(f"Service {spec['serviceName']} does not select the StatefulSet's pods")
    if flag(c, "--k8s-service") != spec["serviceName"]:
        problems.append(f"--k8s-service {flag(c, '--k8s-service')} is not the StatefulSet's serviceName {spec['serviceName']}")
    check_service_ports(headless, c, problems)
    # The clients' Service: exactly pod <name>-0 (global rank 0), whose pod-name label the controller sets.
    front = [o for o in all_of(objects, "Service") if o is not headless]
    if len(front) != 1:
        problems.append(f"expected one Service besides the headless one, found {len(front)}")
    else:
        pod0 = dict(labels, **{"statefulset.kubernetes.io/pod-name": f"{name}-0"})
        pod1 = dict(labels, **{"statefulset.kubernetes.io/pod-name": f"{name}-1"})
        if not selects(front[0]["spec"]["selector"], pod0) or selects(front[0]["spec"]["selector"], pod1):
            problems.append(f"Service {front[0]['metadata']['name']} must select pod {name}-0 only")
        check_service_ports(front[0], c, problems)
    for kind in ("startupProbe", "readinessProbe"):
        if kind not in c:
            problems.append(f"no {kind}")
            continue
        url = probe_url(c[kind])
        if url.hostname != f"{name}-0.{spec['serviceName']}" or url.port != container_port(c, "http"):
            problems.append(f"{kind} asks {url.geturl()}, not rank 0's http port at {name}-0.{spec['serviceName']}")
        if url.path not in ("", "/"):
            problems.append(f"{kind}: --url {url.geturl()} has a path (the client adds /v2/health/ready)")
    claim = volumes.get("model", {}).get("persistentVolumeClaim", {}).get("claimName")
    if claim != s["persistentVolumeClaim"]:
        problems.append(f"the model volume's claim {claim} is not persistentVolumeClaim {s['persistentVolumeClaim']}")
    check_download_dir(c, volumes, s, problems)
    return problems


def check_single_node(objects, values):
    problems = []
    deployment = one(objects, "Deployment")
    d = values["deployment"]
    c, volumes = check_workload_basics(deployment, problems)
    if flag(c, "--gpus") != str(d["numOfGPUs"]):
        problems.append(f"--gpus {flag(c, '--gpus')} is not numOfGPUs {d['numOfGPUs']}")
    service = one(objects, "Service")
    if not selects(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]):
        problems.append("the Service does not select the Deployment's pods")
    check_service_ports(service, c, problems)
    expected = {"startupProbe": "/v2/health/live", "livenessProbe": "/v2/health/live", "readinessProbe": "/v2/health/ready"}
    for kind, path in expected.items():
        get = c.get(kind, {}).get("httpGet")
        if not get or get["path"] != path:
            problems.append(f"{kind} must be httpGet {path}")
        else:
            container_port(c, get["port"])
    claim = d["persistentVolumeClaim"]
    if bool(claim) != ("model" in volumes):
        problems.append(f"persistentVolumeClaim {claim!r} but volumes {sorted(volumes)}")
    check_download_dir(c, volumes, d, problems)
    return problems


def check_test_job(objects, values, server_service=None):
    problems = []
    job = one(objects, "Job")
    pod = job["spec"]["template"]["spec"]
    c = container(job)
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append("a Job's pod needs restartPolicy Never or OnFailure")
    if c.get("command") != ["rankserve-client"]:
        problems.append(f"the Job runs {c.get('command')}, not rankserve-client")
    url = urlsplit(flag(c, "--url") or "")
    if url.scheme != "http" or not url.hostname:
        problems.append(f"--url {flag(c, '--url')} is not http://<service>:<port>")
    if server_service and url.hostname and url.hostname.split(".")[0] != server_service:
        problems.append(f"--url {url.geturl()} does not name the server's Service {server_service}")
    return problems


def readme_helm_commands(readme):
    """Every `helm install` / `helm upgrade -i` of a README as (release, chart dir, sets, set_jsons)."""
    with open(readme) as f:
        text = f.read()
    image = re.search(r"export DOCKER_IMAGE_NAME_WITH_TAG=(\S+)", text).group(1)
    commands = []
    for block in re.findall(r"```shell\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if not re.match(r"\s*helm (install|upgrade -i) ", line):
                continue
            words = shlex.split(line.replace("${DOCKER_IMAGE_NAME_WITH_TAG}", image))
            sets, set_jsons, positional = [], [], []
            i = 2 if words[1] == "install" else 3
            while i < len(words):
                if words[i] in ("--set", "--set-json"):
                    (sets if words[i] == "--set" else set_jsons).append(words[i + 1])
                    i += 2
                else:
                    positional.append(words[i])
                    i += 1
            if len(positional) != 2:
                raise ManifestError(f"README: cannot read release and chart from: {line.strip()}")
            commands.append((positional[0], os.path.join(SOURCE_DIR, positional[1]), sets, set_jsons))
    return commands
