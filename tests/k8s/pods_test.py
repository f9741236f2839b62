#!/usr/bin/python3
"""k8s tier, root: the charts' pods run as Kubernetes would start them, each in a network namespace.

A stand-in for the kubelet: every pod of the rendered StatefulSet (and of the Deployment) gets a network
namespace `k8s-<pod>` on a bridge (10.78.0.0/24, made unreachable from the root namespace first, no default
routes), the pod's hostname, an /etc/hosts that answers what cluster DNS would (the headless Service's
`<pod>.<svc>[.<ns>[.svc[.cluster.local]]]`, each Service's name at the address of the one pod its selector
picks, standing in for its ClusterIP), its volumes (the claim bind-mounted from a folder, emptyDir as tmpfs)
and the container's command, args and env exactly as the manifest gives them ($(VAR) expanded, fieldRefs
resolved). Probes are run as the manifest gives them, inside the pod. The "image" is the build tree:
`rankserve` and `rankserve-client` found on PATH from --bin-dir.

Usage: pods_test.py --bin-dir BUILD/launcher --state DIR     (exit 77: skipped, not root)
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helm_template  # noqa: E402
import kube_schema  # noqa: E402
import manifests  # noqa: E402
from manifests import EXAMPLES  # noqa: E402

SUBNET = "10.78.0"
BRIDGE_NS = "k8s-net"
NAMESPACE = "llm"  # the Kubernetes namespace the releases are installed in
CLUSTER_DOMAIN = "cluster.local"
LOAD_DEADLINE_S = 240  # loading and rendezvous of the built-in model on a loaded 2-core machine
EXIT_DEADLINE_S = 30
# Paths a tmpfs may never cover when a mountPath's folder does not exist on this machine.
PROTECTED = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin",
             "/sys", "/tmp", "/usr", "/var", "/work"}


class Failure(Exception):
    pass


def sh(*cmd, check=True):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise Failure(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


class Network:
    """The bridge namespace and one namespace per pod, all named k8s-*; torn down by teardown()."""

    def __init__(self):
        self.namespaces = []
        self.next_ip = 10

    def up(self):
        existing = sh("ip", "route", "show", "type", "unreachable", f"{SUBNET}.0/24", check=False).stdout.strip()
        if not existing:
            sh("ip", "route", "add", "unreachable", f"{SUBNET}.0/24")
        self.add_namespace(BRIDGE_NS)
        sh("ip", "-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", BRIDGE_NS, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        sh("ip", "-n", BRIDGE_NS, "link", "set", "br0", "up")

    def add_namespace(self, ns):
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    def add_pod(self, pod_name):
        """A namespace k8s-<pod> with eth0 on the bridge; returns (namespace, address)."""
        ns = f"k8s-{pod_name}"
        ip = f"{SUBNET}.{self.next_ip}"
        veth = f"v{self.next_ip}"
        self.next_ip += 1
        self.add_namespace(ns)
        sh("ip", "-n", BRIDGE_NS, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", BRIDGE_NS, "link", "set", veth, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        return ns, ip

    @staticmethod
    def kill_all(ns):
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def teardown(self):
        names = set(self.namespaces)
        # Namespaces a killed earlier run left behind (this test's names only).
        names |= {line.split()[0] for line in sh("ip", "netns", "list", check=False).stdout.splitlines()
                  if line.startswith("k8s-")}
        for ns in sorted(names):
            self.kill_all(ns)
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "route", "del", "unreachable", f"{SUBNET}.0/24", check=False)
        self.namespaces = []


class Pod:
    """One pod: its namespace, hostname, hosts file, volumes and container, started as the kubelet would."""

    def __init__(self, state, name, ns, ip, spec, claims):
        self.state, self.name, self.ns, self.ip, self.spec, self.claims = state, name, ns, ip, spec, claims
        self.container = spec["containers"][0]
        self.hosts = os.path.join(state, f"hosts-{name}")
        self.log = os.path.join(state, f"{name}.log")
        self.process = None

    def env(self, bin_dir):
        """The container's environment: the runtime's PATH and HOSTNAME, then env in order, $(VAR) expanded."""
        env = {"PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME": self.name,
               "HOME": "/root"}
        fields = {"metadata.name": self.name, "metadata.namespace": NAMESPACE, "status.podIP": self.ip}
        for e in self.container.get("env", []):
            if "value" in e:
                env[e["name"]] = expand(e["value"], env)
            elif "fieldRef" in e.get("valueFrom", {}):
                path = e["valueFrom"]["fieldRef"]["fieldPath"]
                if path not in fields:
                    raise Failure(f"env {e['name']}: fieldRef {path} is not one this test resolves ({sorted(fields)})")
                env[e["name"]] = fields[path]
            else:
                raise Failure(f"env {e['name']}: {e} is not a value or a fieldRef")
        return env

    def mount_script(self):
        """Shell lines that set up the pod's mount namespace: /etc/hosts, then each volumeMount."""
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        lines = [f'hostname "{self.name}"', f'mount --bind "{self.hosts}" /etc/hosts']
        covered = set()
        for m in self.container.get("volumeMounts", []):
            path, volume = m["mountPath"], volumes[m["name"]]
            if not os.path.isdir(path):
                parent = os.path.dirname(path)
                if parent in PROTECTED or not os.path.isdir(parent):
                    raise Failure(f"mountPath {path}: this test mounts a tmpfs over its parent, which {parent} cannot be")
                if parent not in covered:
                    lines.append(f'mount -t tmpfs tmpfs "{parent}"')
                    covered.add(parent)
                lines.append(f'mkdir -p "{path}"')
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                if claim not in self.claims:
                    raise Failure(f"volume {m['name']}: claim {claim} is not bound here (bound: {sorted(self.claims)})")
                lines.append(f'mount --bind "{self.claims[claim]}" "{path}"')
                if m.get("readOnly"):
                    lines.append(f'mount -o remount,bind,ro "{path}"')
            elif "emptyDir" in volume:
                lines.append(f'mount -t tmpfs tmpfs "{path}"')
            else:
                raise Failure(f"volume {m['name']}: {volume} is not a claim or an emptyDir")
        if "workingDir" in self.container:
            lines.append(f'cd "{self.container["workingDir"]}"')
        return "; ".join(lines)

    def in_pod(self, argv):
        """argv run inside the pod: its network, hostname, hosts file and volumes."""
        return ["nsenter", f"--net=/run/netns/{self.ns}", "unshare", "--uts", "--mount", "--propagation", "slave",
                "/bin/sh", "-c", f'set -e; {self.mount_script()}; exec "$@"', "pod", *argv]

    def start(self, bin_dir):
        env = self.env(bin_dir)
        argv = [expand(a, env) for a in self.container.get("command", []) + self.container.get("args", [])]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.in_pod(argv), env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        # The kubelet probes a started container only: wait until the pod's setup has exec'd the command.
        deadline = time.monotonic() + 10
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                with open(f"/proc/{self.process.pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[0] == argv[0].encode():
                        break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise Failure(f"pod {self.name}: its command never started; its log:\n{self.log_tail()}")
        print(f"k8s: pod {self.name} ({self.ip}): {' '.join(argv)}", flush=True)

    def run(self, argv, bin_dir, timeout):
        """A process in the pod with the container's env: inside the running container's namespaces (an exec
        probe, as the kubelet's), else in new ones (a Job's container). Returns (rc, output)."""
        env = self.env(bin_dir)
        argv = [expand(a, env) for a in argv]
        if self.process and self.process.poll() is None:
            argv = ["nsenter", f"--target={self.process.pid}", "--net", "--uts", "--mount", "--", *argv]
        else:
            argv = self.in_pod(argv)
        try:
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
            return r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            return 124, f"timed out after {timeout} s: {e.stdout or ''}{e.stderr or ''}"

    def probe(self, kind, bin_dir):
        """The container's probe `kind` as the kubelet runs it once: (passed, what it said)."""
        p = self.container[kind]
        timeout = p.get("timeoutSeconds", 1)
        if "exec" in p:
            rc, out = self.run(p["exec"]["command"], bin_dir, timeout)
            return rc == 0, out.strip()
        if "httpGet" in p:
            g = p["httpGet"]
            port = manifests.container_port(self.container, g["port"])
            url = f"http://{g.get('host', self.ip)}:{port}{g['path']}"
            # The kubelet's HTTP probe: any status from 200 to 399 passes.
            r = sh("nsenter", f"--net=/run/netns/{self.ns}", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                   "--max-time", str(timeout), url, check=False)
            code = int(r.stdout or 0)
            return 200 <= code < 400, f"GET {url}: {code}"
        raise Failure(f"{kind}: {p} is neither exec nor httpGet")

    def log_tail(self, lines=25):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def expand(text, env):
    """The kubelet's $(VAR) expansion of command, args and env values ($$ is a literal $)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def write_hosts(pods, services, pod_labels, publish_pods=True):
    """Each pod's /etc/hosts: what cluster DNS answers in namespace NAMESPACE, and the kubelet's own line.
    publish_pods=False leaves out the headless Services' pod records, as before the endpoints controller and
    cluster DNS have caught up with new pods. Rewritten in place, the bind-mounted files change in every pod."""
    dns = ["127.0.0.1 localhost"]
    for svc in services:
        spec = svc["spec"]
        name = svc["metadata"]["name"]
        selected = [p for p in pods if manifests.selects(spec["selector"], pod_labels[p.name])]
        fqdn = f"{name}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}"
        if spec.get("clusterIP") == "None":
            # Cluster DNS lists a not-ready pod only when the Service publishes not-ready addresses; no pod is
            # ready at the start, and none would become ready without these names.
            if not spec.get("publishNotReadyAddresses") or not publish_pods:
                continue
            for p in (p for p in selected if p.spec.get("subdomain") == name):
                sub = f"{p.name}.{name}"
                dns.append(f"{p.ip} {sub}.{NAMESPACE}.svc.{CLUSTER_DOMAIN} {sub}.{NAMESPACE}.svc {sub}.{NAMESPACE} {sub}")
        else:
            # A ClusterIP stands in as the address of the one pod the selector picks (no load balancing here),
            # faithful only while every port forwards to the same port number.
            if len(selected) != 1:
                raise Failure(f"Service {name} selects {len(selected)} pods; this test stands in for one")
            for port in spec["ports"]:
                target = manifests.container_port(selected[0].container, port.get("targetPort", port["port"]))
                if target != port["port"]:
                    raise Failure(f"Service {name} port {port['port']} forwards to {target}; the stand-in needs equal ports")
            dns.append(f"{selected[0].ip} {fqdn} {name}.{NAMESPACE}.svc {name}.{NAMESPACE} {name}")
    for p in pods:
        own = p.name
        if p.spec.get("subdomain"):
            own = f"{p.name}.{p.spec['subdomain']}.{NAMESPACE}.svc.{CLUSTER_DOMAIN} {p.name}"
        with open(p.hosts, "w") as f:
            f.write("\n".join(dns + [f"{p.ip} {own}"]) + "\n")


def render(chart, release, sets=(), set_jsons=()):
    """A chart's objects, refused unless they pass the schema and the cross-object checks."""
    chart_dir = os.path.join(EXAMPLES, chart)
    objects = helm_template.render_objects(chart_dir, release, NAMESPACE, sets=sets, set_jsons=set_jsons)
    values = helm_template.chart_values(chart_dir, sets=sets, set_jsons=set_jsons)
    problems = [p for _, o in objects for p in kube_schema.validate(o)]
    check = {"multi-node": manifests.check_multi_node, "single-node": manifests.check_single_node,
             "test": manifests.check_test_job}[chart]
    problems += check(objects, values)
    if problems:
        raise Failure(f"{chart}: " + "; ".join(problems))
    return objects


def wait_until(what, seconds, predicate, alive=()):
    """Polls predicate() until it is true; fails at the deadline or when a pod in `alive` exits first."""
    deadline = time.monotonic() + seconds
    while True:
        ok, said = predicate()
        if ok:
            return said
        for p in alive:
            if p.process.poll() is not None:
                raise Failure(f"{what}: pod {p.name} exited {p.process.returncode} first; its log:\n{p.log_tail()}")
        if time.monotonic() > deadline:
            raise Failure(f"{what}: not within {seconds} s; last: {said}")
        time.sleep(0.5)


def wait_exit(pod, seconds):
    try:
        return pod.process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        raise Failure(f"pod {pod.name} still runs {seconds} s later; its log:\n{pod.log_tail()}") from None


def job_pod(objects, network, state, name_suffix, claims):
    job = manifests.one(objects, "Job")
    pod_name = f"{job['metadata']['name']}-{name_suffix}"  # a Job's pod: <job>-<random>
    ns, ip = network.add_pod(pod_name)
    return Pod(state, pod_name, ns, ip, job["spec"]["template"]["spec"], claims)


def run_job(job, bin_dir, expect):
    c = job.container
    rc, out = job.run(c["command"] + c.get("args", []), bin_dir, timeout=120)
    print(f"k8s: job {job.name}: exit {rc}\n{out.rstrip()}", flush=True)
    if rc != 0 or expect not in out:
        raise Failure(f"the test Job exited {rc} (expected 0 and '{expect}' in its output)")


def statefulset(network, state, bin_dir, claims):
    """The multi-node chart at numOfNodes 2 x numOfGPUs 1: the built-in model (saved at TP 2) spans both pods."""
    env = [{"name": "RANKSERVE_CPU_THREADS", "value": "1"}, {"name": "RANKSERVE_TIMEOUT", "value": "120"},
           {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "RANKSERVE_URL_FILE", "value": "/dev/shm/$(POD_NAME).url"}]
    objects = render("multi-node", "rankserve", sets=["statefulset.numOfNodes=2", "statefulset.numOfGPUs=1",
                                                      "statefulset.modelPath=/mnt/data/builtin.nemo"],
                     set_jsons=[f"statefulset.env={json.dumps(env)}"])
    sts = manifests.one(objects, "StatefulSet")
    template = sts["spec"]["template"]
    pods, labels = [], {}
    for ordinal in range(sts["spec"]["replicas"]):
        name = f"{sts['metadata']['name']}-{ordinal}"  # the StatefulSet controller's pod names and labels
        ns, ip = network.add_pod(name)
        spec = dict(template["spec"], hostname=name, subdomain=sts["spec"]["serviceName"])
        pods.append(Pod(state, name, ns, ip, spec, claims))
        labels[name] = dict(template["metadata"]["labels"], **{"statefulset.kubernetes.io/pod-name": name})
    test_objects = render("test", "rankserve-test")
    job = job_pod(test_objects, network, state, "x7k2p", claims)
    labels[job.name] = {}
    services = manifests.all_of(objects, "Service")
    head, worker = pods

    # The pod starts before cluster DNS has its record: its launcher waits for the name, then goes on.
    write_hosts(pods + [job], services, labels, publish_pods=False)
    head.start(bin_dir)
    wait_until(f"pod {head.name} waiting for its DNS record", EXIT_DEADLINE_S,
               lambda: ("does not resolve yet" in head.log_tail(), head.log_tail(3)), [head])
    write_hosts(pods + [job], services, labels)
    if sts["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady":
        # The controller creates pod 1 only once pod 0 is ready.
        wait_until(f"pod {head.name} ready before the controller creates {worker.name} (OrderedReady)", LOAD_DEADLINE_S,
                   lambda: head.probe("readinessProbe", bin_dir), [head])
    ok, said = head.probe("readinessProbe", bin_dir)
    if ok or "not ready within" not in said:
        raise Failure(f"rank 0's pod while pod {worker.name} has not started: the readiness probe should say "
                      f"'not ready within', it {'passed' if ok else 'failed'}: {said}")
    print(f"k8s: {head.name} not ready while {worker.name} is missing: {said.splitlines()[-1] if said else ''}")
    worker.start(bin_dir)
    said = wait_until("the StatefulSet ready", LOAD_DEADLINE_S, lambda: head.probe("readinessProbe", bin_dir), pods)
    print(f"k8s: {head.name} ready: {said}")
    for p in pods:
        for kind in ("startupProbe", "readinessProbe"):
            ok, said = p.probe(kind, bin_dir)
            if not ok:
                raise Failure(f"pod {p.name}: {kind} fails while rank 0 is ready: {said}")
    # The env's $(POD_NAME) expanded, and the emptyDir at /dev/shm is the container's own.
    rc, url = head.run(["cat", f"/dev/shm/{head.name}.url"], bin_dir, timeout=10)
    if rc != 0 or url.strip() != f"http://{head.name}:8000":
        raise Failure(f"rank 0's --url-file /dev/shm/$(POD_NAME).url: exit {rc}, {url.strip()!r}")
    run_job(job, bin_dir, "1 2 3 4 5 6 7 8")

    # A worker pod that dies: rank 0 ends too, naming it (its container would restart and the group rejoin).
    network.kill_all(worker.ns)
    wait_exit(worker, EXIT_DEADLINE_S)
    rc = wait_exit(head, EXIT_DEADLINE_S)
    if rc == 0 or f"rank 1 (host {worker.name}.{sts['spec']['serviceName']})" not in head.log_tail(60):
        raise Failure(f"after pod {worker.name} was killed, rank 0 exited {rc}; its log:\n{head.log_tail()}")
    print(f"k8s: {worker.name} killed: rank 0 exited {rc}: {head.log_tail(60).strip().splitlines()[-1]}")


def deployment(network, state, bin_dir, claims):
    """The single-node chart with its defaults: HTTP probes asked of the server, the Job, SIGTERM drains."""
    objects = render("single-node", "single", set_jsons=['deployment.env=[{"name": "RANKSERVE_CPU_THREADS", "value": "1"}]'])
    d = manifests.one(objects, "Deployment")
    name = f"{d['metadata']['name']}-6d8f7c9b5-q4x2z"  # a Deployment's pod: <name>-<replicaset hash>-<random>
    ns, ip = network.add_pod(name)
    pod = Pod(state, name, ns, ip, d["spec"]["template"]["spec"], claims)
    test_objects = render("test", "single-test", sets=["serverUrl=http://single:8000"])
    job = job_pod(test_objects, network, state, "m3n8w", claims)
    labels = {pod.name: d["spec"]["template"]["metadata"]["labels"], job.name: {}}
    write_hosts([pod, job], manifests.all_of(objects, "Service"), labels)

    pod.start(bin_dir)
    said = wait_until("the Deployment's startup probe", LOAD_DEADLINE_S, lambda: pod.probe("startupProbe", bin_dir), [pod])
    said = wait_until("the Deployment ready", LOAD_DEADLINE_S, lambda: pod.probe("readinessProbe", bin_dir), [pod])
    ok, live = pod.probe("livenessProbe", bin_dir)
    if not ok:
        raise Failure(f"liveness fails on a ready server: {live}")
    print(f"k8s: {pod.name}: {said}; {live}")
    run_job(job, bin_dir, "1 2 3 4 5 6 7 8")
    # Deleting the pod: SIGTERM, then SIGKILL after terminationGracePeriodSeconds. The drain must end first.
    pod.process.send_signal(signal.SIGTERM)
    rc = wait_exit(pod, pod.spec.get("terminationGracePeriodSeconds", 30))
    if rc != 0:
        raise Failure(f"after SIGTERM the pod exited {rc}; its log:\n{pod.log_tail()}")
    print(f"k8s: {pod.name}: SIGTERM drained, exit 0")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True, help="the folder holding rankserve and rankserve-client")
    parser.add_argument("--state", required=True)
    a = parser.parse_args()
    if os.geteuid() != 0:
        print("k8s: not root, skipping the pod test (it creates network and mount namespaces)", file=sys.stderr)
        return 77
    bin_dir = os.path.abspath(a.bin_dir)
    builtin = os.path.join(bin_dir, "..", "share", "rankserve", "builtin.nemo")
    if not os.path.isfile(builtin):
        print(f"k8s: no built-in model at {builtin} (a build with RANKSERVE_BUILTIN_MODEL=ON trains it)", file=sys.stderr)
        return 1
    state = os.path.abspath(a.state)
    network = Network()
    network.teardown()  # what a killed run left
    shutil.rmtree(state, ignore_errors=True)
    claim_dir = os.path.join(state, "volumes", "llm-cache-pvc")
    os.makedirs(claim_dir)
    shutil.copy(builtin, claim_dir)  # the model on the claim, as the README's kubectl cp puts it there
    claims = {"llm-cache-pvc": claim_dir}

    def stop(signum, _frame):
        raise SystemExit(f"k8s: signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        network.up()
        statefulset(network, state, bin_dir, claims)
        deployment(network, state, bin_dir, claims)
    except (Failure, manifests.ManifestError, helm_template.TemplateError) as e:
        print(f"k8s: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        network.teardown()
    print("k8s: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
