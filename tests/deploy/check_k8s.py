#!/usr/bin/env python3
"""Checks of facet's rendered Kubernetes manifests (`kubectl kustomize DIR`
output), for tests/deploy/k8s.sh. Each subcommand prints one line per
property it checked -- "ok: ..." or "FAIL: ..." -- and exits 1 if any failed.

  check_k8s.py validate FILE VERSION...
      every object against the Kubernetes API's schemas of each VERSION
      (kubernetes-validate, strict: unknown fields are errors); a
      LeaderWorkerSet's pod templates as v1 PodTemplates; a kind without a
      schema fails. Also proves, on a mutated copy, that an unknown field fails.
  check_k8s.py properties FILE --tp T --workers N --gpus G --credential token|tls
      what the deployment must do (docs/DEPLOYMENT.md): non-root everywhere,
      T workers + spares, GPUs, probes, drain vs grace period, secrets as
      files, the Services, the PodDisruptionBudget, the NetworkPolicies.
  check_k8s.py security FILE
      only the pod-level rules of `properties` (non-root, no capabilities,
      ...), for manifests that are not a facet cluster (cluster/k8s/models).
  check_k8s.py mutants FILE (the options of properties)
      the properties check fails on each of a list of broken copies of FILE.
  check_k8s.py commands FILE OUTDIR
      each facet container's command line with $(VAR)s expanded as the
      kubelet would (the pod IP and such are dummies), NUL-separated, in
      OUTDIR/ROLE.args, and without its `args` (the credential) in
      OUTDIR/ROLE.noargs, for `facet ... --dry-run`.
  check_k8s.py worker-probes FILE STATUS
      the workers' probes agree with STATUS, what an idle worker's
      grpc.health.v1 answered (SERVING or NOT_SERVING).
  check_k8s.py lws-schema FILE CRD
      the LeaderWorkerSet against the CRD's openAPIV3Schema (jsonschema),
      unknown fields refused as the API server would prune them; and, on
      mutated copies, that a bad enum value and an unknown field fail.

Needs PyYAML, and for validate and lws-schema kubernetes-validate (which
brings jsonschema): the project's .venv (tests/requirements.txt).
"""
import argparse
import copy
import math
import os
import re

import yaml

from checklib import finish, report, results


def load(path):
    with open(path) as f:
        objs = [o for o in yaml.safe_load_all(f) if o]
    if not objs:
        report(False, f"{path} holds Kubernetes objects", "it is empty")
        finish()
    return objs


# ---- the objects -----------------------------------------------------------------------------------

COMPONENT = "app.kubernetes.io/component"
CREDENTIAL_FLAGS = {"--cluster-token-file", "--tls-ca", "--tls-cert", "--tls-key"}
FILE_FLAGS = CREDENTIAL_FLAGS | {"--api-key-file"}
NO_VALUE_FLAGS = {"--insecure", "--allow-fault-injection", "--dry-run", "--no-cuda-graphs", "--quiet"}
LWS_KIND = "LeaderWorkerSet"
# what the LWS webhook adds to every container of a group (dummies here)
LWS_ENV = {"LWS_LEADER_ADDRESS": "facet-lws-0.facet-lws.facet", "LWS_GROUP_SIZE": "4", "LWS_WORKER_INDEX": "1"}


def name_of(o):
    return f"{o['kind']}/{o['metadata']['name']}"


def templates(objs):
    """(owner, role, pod metadata, pod spec, is_lws) for every pod the objects make."""
    out = []
    for o in objs:
        kind, spec = o["kind"], o.get("spec", {})
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            t = spec["template"]
            out.append((o, t["metadata"].get("labels", {}).get(COMPONENT), t["metadata"], t["spec"], False))
        elif kind == "Pod":
            out.append((o, o["metadata"].get("labels", {}).get(COMPONENT), o["metadata"], spec, False))
        elif kind == LWS_KIND:
            lwt = spec["leaderWorkerTemplate"]
            for key in ("leaderTemplate", "workerTemplate"):
                if key in lwt:
                    t = lwt[key]
                    out.append((o, t["metadata"].get("labels", {}).get(COMPONENT), t["metadata"], t["spec"], True))
    return out


def facet_container(spec):
    return next((c for c in spec.get("containers", []) if c["name"] == "facet"), None)


def cpu_cores(q):
    q = str(q)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def mem_bytes(q):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    return float(m.group(1)) * units.get(m.group(2), 1)


def container_env(c, extra=None):
    """The container's environment as the kubelet would make it: values, the
    downward API (dummy pod facts), resource fields. A Secret in the
    environment is refused elsewhere; here it gives None."""
    env = dict(extra or {})
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = expand(e["value"], env)
        elif "fieldRef" in e.get("valueFrom", {}):
            env[e["name"]] = {"status.podIP": "10.1.2.3", "metadata.name": "facet-pod",
                              "metadata.namespace": "facet", "spec.nodeName": "node-1"}.get(
                                  e["valueFrom"]["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["resourceFieldRef"]
            where, res = ref["resource"].split(".", 1)
            q = c.get("resources", {}).get(where, {}).get(res)
            if q is None:
                env[e["name"]] = None
            elif res == "cpu":  # rounded up to whole cores with the default divisor, as the kubelet does
                env[e["name"]] = str(math.ceil(cpu_cores(q) / cpu_cores(ref.get("divisor", "1"))))
            else:
                env[e["name"]] = str(math.ceil(mem_bytes(q) / mem_bytes(ref.get("divisor", "1"))))
        else:
            env[e["name"]] = None
    return env


def expand(s, env):
    """Kubernetes' $(VAR) expansion ($$ escapes); an unknown VAR stays as written."""
    def one(m):
        if m.group(0).startswith("$$"):
            return m.group(0)[1:]
        v = env.get(m.group(1))
        return m.group(0) if v is None else v
    return re.sub(r"\$\$\(\w+\)|\$\((\w+)\)", one, str(s))


def command_line(c, is_lws):
    env = container_env(c, LWS_ENV if is_lws else None)
    cmd = [expand(a, env) for a in c.get("command", [])]
    args = [expand(a, env) for a in c.get("args", [])]
    return cmd, args


def options(argv):
    """facet's --flag VALUE pairs (and bare flags) into a dict."""
    opts, i = {}, 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and a not in NO_VALUE_FLAGS and i + 1 < len(argv):
            opts[a] = argv[i + 1]
            i += 2
        else:
            opts[a] = True
            i += 1
    return opts


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# ---- validate ---------------------------------------------------------------------------------------

def validate_one(kv, obj, versions, label):
    ok = True
    for v in versions:
        try:
            kv.validate(obj, v, strict=True)
        except kv.utils.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            ok = report(False, f"{label} is valid Kubernetes {v}", f"{path}: {e.message}") and ok
            continue
        except kv.utils.SchemaNotFoundError:
            ok = report(False, f"{label}: kubernetes-validate has a schema for it ({v})", "no schema for this kind")
            continue
        report(True, f"{label} is valid Kubernetes {v} (strict)")
    return ok


def cmd_validate(a):
    import kubernetes_validate as kv
    import kubernetes_validate.utils  # noqa: F401  (kv.utils for the exceptions)
    objs = load(a.file)
    for o in objs:
        if o["kind"] == LWS_KIND:
            # the CRD's own schema is lws-schema's job; its pod templates are core/v1
            for key, t in o["spec"]["leaderWorkerTemplate"].items():
                if key.endswith("Template") and isinstance(t, dict):
                    wrapped = {"apiVersion": "v1", "kind": "PodTemplate",
                               "metadata": {"name": f"{o['metadata']['name']}-{key}",
                                            "namespace": o["metadata"].get("namespace", "default")},
                               "template": t}
                    validate_one(kv, wrapped, a.versions, f"{name_of(o)} .{key} (as a v1 PodTemplate)")
        else:
            validate_one(kv, o, a.versions, name_of(o))
    # the validator refuses what it should: a misspelt field in a copy of the first pod template
    victim = next((o for o in objs if o["kind"] in ("Deployment", "Pod")), None)
    if victim is not None:
        bad = copy.deepcopy(victim)
        spec = bad["spec"]["template"]["spec"] if bad["kind"] == "Deployment" else bad["spec"]
        spec["containers"][0]["imagePullPolicyy"] = "Always"
        try:
            kv.validate(bad, a.versions[0], strict=True)
            report(False, "kubernetes-validate refuses a misspelt container field (imagePullPolicyy)", "it passed")
        except kv.utils.ValidationError:
            report(True, "kubernetes-validate refuses a misspelt container field (imagePullPolicyy)")
    finish()


# ---- properties -------------------------------------------------------------------------------------

def check_pod_security(owner, role, meta, spec):
    who = f"{name_of(owner)} ({role})"
    psc = spec.get("securityContext", {})
    report(spec.get("automountServiceAccountToken") is False, f"{who}: no service account token mounted")
    report(not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), f"{who}: no host namespaces")
    report(not any("hostPath" in v for v in spec.get("volumes", [])), f"{who}: no hostPath volume")
    report((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
           f"{who}: seccomp profile RuntimeDefault")
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        csc = c.get("securityContext", {})
        cw = f"{who} container {c['name']}"
        non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        report(non_root and isinstance(uid, int) and uid != 0, f"{cw}: runs as non-root (runAsNonRoot, uid {uid})")
        report(csc.get("allowPrivilegeEscalation") is False and not csc.get("privileged"),
               f"{cw}: no privilege escalation, not privileged")
        report(csc.get("readOnlyRootFilesystem") is True, f"{cw}: read-only root filesystem")
        caps = csc.get("capabilities", {})
        report("ALL" in caps.get("drop", []) and not caps.get("add"), f"{cw}: drops all capabilities, adds none")
        report(not any("hostPort" in p for p in c.get("ports", [])), f"{cw}: no host port")
        image = c.get("image", "")
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        report(bool(tag) and tag != "latest" or "@sha256:" in image, f"{cw}: image {image} has a tag, not latest")
        res = c.get("resources", {})
        req, lim = res.get("requests", {}), res.get("limits", {})
        report("cpu" in req and "memory" in req and "memory" in lim
               and mem_bytes(req["memory"]) <= mem_bytes(lim["memory"]),
               f"{cw}: requests CPU and memory, memory limit >= request",
               f"requests {req}, limits {lim}")
        for e in c.get("env", []):
            vf = e.get("valueFrom", {})
            report("secretKeyRef" not in vf, f"{cw}: env {e['name']} is not read from a Secret (secrets are files)")
        report(not {"FACET_CLUSTER_TOKEN", "FACET_API_KEY"} & {e["name"] for e in c.get("env", [])},
               f"{cw}: no credential in the environment (FACET_CLUSTER_TOKEN, FACET_API_KEY)")


def mounts_of(c, spec):
    """mountPath -> (volume, readOnly)"""
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    return {m["mountPath"]: (vols.get(m["name"]), m.get("readOnly", False)) for m in c.get("volumeMounts", [])}


def secret_file(path, c, spec):
    """The Secret volume a file path lies in, or None: mounted read-only, the
    file one of its items (or any key when it lists none), no world bits."""
    for mp, (vol, ro) in mounts_of(c, spec).items():
        if vol and "secret" in vol and path.startswith(mp.rstrip("/") + "/"):
            rel = path[len(mp.rstrip("/")) + 1:]
            items = vol["secret"].get("items")
            in_items = items is None or any(i["path"] == rel for i in items)
            mode = vol["secret"].get("defaultMode", 0o644)
            if ro and in_items and not mode & 0o007:
                return vol["secret"]["secretName"]
    return None


def port_number(c, port):
    if isinstance(port, int):
        return port
    return next((p["containerPort"] for p in c.get("ports", []) if p.get("name") == port), None)


def check_credentials(role, c, spec, cmd, args, credential):
    opts = options(cmd[2:] + args)
    who = f"the {role}"
    report("--insecure" not in opts and "--allow-fault-injection" not in opts,
           f"{who}: neither --insecure nor --allow-fault-injection")
    report(args and set(options(args)) <= CREDENTIAL_FLAGS and not CREDENTIAL_FLAGS & set(options(cmd)),
           f"{who}: the cluster credential is all of `args`, and nowhere in `command`",
           f"args {args}")
    for flag in sorted(FILE_FLAGS & set(opts)):
        report(secret_file(opts[flag], c, spec) is not None,
               f"{who}: {flag} {opts[flag]} is a file of a Secret mounted read-only, mode without world bits")
    if credential == "token":
        report("--cluster-token-file" in opts and not {"--tls-ca", "--tls-cert", "--tls-key"} & set(opts),
               f"{who}: cluster token mode (--cluster-token-file, no --tls-*)")
    else:
        own = "coordinator" if role == "coordinator" else "worker"
        ok = all(f in opts for f in ("--tls-ca", "--tls-cert", "--tls-key")) and "--cluster-token-file" not in opts
        ok = ok and os.path.basename(str(opts.get("--tls-cert"))) == f"{own}.pem" \
            and os.path.basename(str(opts.get("--tls-key"))) == f"{own}-key.pem"
        report(ok, f"{who}: mutual TLS with the {own} role's certificate and key, no token")
    return opts


def check_coordinator(objs, owner, meta, spec, is_lws, tp, credential):
    c = facet_container(spec)
    if not report(c is not None, "the coordinator pod has a container named facet"):
        return None, None
    cmd, args = command_line(c, is_lws)
    report(cmd[:2] == ["/usr/local/bin/facet", "coordinator"], "the coordinator runs `facet coordinator`", str(cmd[:2]))
    opts = check_credentials("coordinator", c, spec, cmd, args, credential)
    report(opts.get("--tp") == str(tp), f"the coordinator's --tp is {tp}", f"--tp {opts.get('--tp')}")
    report(opts.get("--host") == "0.0.0.0", "the coordinator listens on all interfaces (--host 0.0.0.0)")
    if not is_lws:
        report(owner["kind"] == "Deployment" and owner["spec"].get("replicas") == 1
               and owner["spec"].get("strategy", {}).get("type") == "Recreate",
               "the coordinator: a Deployment of 1 replica, Recreate (never two at once)")
    want = {"http": opts.get("--http-port"), "grpc": opts.get("--grpc-port"), "cluster": opts.get("--cluster-port")}
    have = {p.get("name"): str(p["containerPort"]) for p in c.get("ports", [])}
    report(all(want[k] is not None and have.get(k) == want[k] for k in want),
           "the coordinator's container ports http, grpc, cluster are its --http-port, --grpc-port, --cluster-port",
           f"ports {have}, flags {want}")
    http = int(want["http"] or 0)

    def http_probe(kind, path):
        p = c.get(kind) or {}
        g = p.get("httpGet") or {}
        return g.get("path") == path and port_number(c, g.get("port")) == http
    report(http_probe("startupProbe", "/health"), "the coordinator has a startupProbe on HTTP /health")
    report(http_probe("readinessProbe", "/ready"), "the coordinator has a readinessProbe on HTTP /ready")
    report(http_probe("livenessProbe", "/health"), "the coordinator has a livenessProbe on HTTP /health")
    pre = ((c.get("lifecycle") or {}).get("preStop") or {})
    sleep = 0
    if "exec" in pre:
        argv = pre["exec"]["command"]
        sleep = float(argv[1]) if len(argv) == 2 and argv[0].endswith("/sleep") else 0
    elif "sleep" in pre:
        sleep = float(pre["sleep"]["seconds"])
    report(sleep > 0, f"the coordinator has a preStop pause ({sleep:g} s) so its endpoints go before SIGTERM")
    drain = int(opts.get("--drain-timeout", 30000)) / 1000
    grace = spec.get("terminationGracePeriodSeconds", 30)
    report(grace > sleep + drain,
           f"the coordinator's terminationGracePeriodSeconds ({grace}) > preStop ({sleep:g} s) + --drain-timeout ({drain:g} s)")
    ann = meta.get("annotations", {})
    report(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(http)
           and ann.get("prometheus.io/path") == "/metrics",
           f"the coordinator pod carries Prometheus scrape annotations (port {http}, /metrics)")
    mounts = mounts_of(c, spec)
    model = str(opts.get("--model", ""))
    models = mounts.get("/models")
    report(model.startswith("/models/") and models is not None and models[1]
           and "persistentVolumeClaim" in (models[0] or {}),
           f"the coordinator's --model {model} is on a claim mounted read-only at /models")
    report("--api-key-file" in opts, "the coordinator requires an API key (--api-key-file)")
    report("nvidia.com/gpu" not in str(c.get("resources", {})) and "cuda" not in c.get("image", ""),
           "the coordinator uses the CPU image and no GPU")
    return c, opts


def check_workers(objs, owner, meta, spec, is_lws, tp, workers, gpus, credential, co_opts, co):
    """co: the coordinator's container, pod metadata and pod spec"""
    c = facet_container(spec)
    if not report(c is not None, "the worker pod has a container named facet"):
        return
    cmd, args = command_line(c, is_lws)
    report(cmd[:2] == ["/usr/local/bin/facet", "worker"], "the workers run `facet worker`", str(cmd[:2]))
    opts = check_credentials("workers", c, spec, cmd, args, credential)
    report(workers > tp, f"{workers} workers for T = {tp}: at least one spare")
    if is_lws:
        lwt = owner["spec"]["leaderWorkerTemplate"]
        report(lwt.get("size") == workers + 1, f"LeaderWorkerSet size {lwt.get('size')} = 1 coordinator + {workers} workers")
        report(lwt.get("restartPolicy") == "None",
               "LeaderWorkerSet restartPolicy None: a failed pod is restarted alone, the group is not recreated")
        report(owner["spec"].get("startupPolicy", "LeaderCreated") == "LeaderCreated",
               "LeaderWorkerSet startupPolicy LeaderCreated (workers must start before the coordinator can be ready)")
        want = f"{LWS_ENV['LWS_LEADER_ADDRESS']}:{co_opts.get('--cluster-port')}"
        report(opts.get("--coordinator") == want, f"the workers register with their group's leader ($(LWS_LEADER_ADDRESS):cluster port)",
               f"--coordinator {opts.get('--coordinator')}")
        services = {o["metadata"]["name"] for o in objs if o["kind"] == "Service"}
        report(owner["metadata"]["name"] not in services,
               f"no Service is named {owner['metadata']['name']} (LWS makes its headless Service under that name)")
    else:
        report(owner["kind"] == "Deployment" and owner["spec"].get("replicas") == workers,
               f"the workers: a Deployment of {workers} replicas (T = {tp} + {workers - tp} spare)",
               f"{owner['kind']} replicas {owner['spec'].get('replicas')}")
        host, _, port = str(opts.get("--coordinator", "")).rpartition(":")
        svc = next((o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == host), None)
        ok = svc is not None and selects(svc["spec"].get("selector"), co["meta"].get("labels", {}))
        sp = next((p for p in (svc or {}).get("spec", {}).get("ports", []) if str(p["port"]) == port), None)
        ok = ok and sp is not None and port_number(co["container"], sp.get("targetPort", sp["port"])) == int(co_opts.get("--cluster-port", -1))
        report(ok, f"the workers' --coordinator {host}:{port} is a Service to the coordinator's cluster port")
        report(bool(svc) and svc["spec"].get("publishNotReadyAddresses") is True,
               f"Service {host} publishes a coordinator that is not ready yet (it is ready only once workers registered)")
    env = {e["name"]: e for e in c.get("env", [])}
    adv = (c.get("command", []) + c.get("args", []))
    raw = options(adv[2:])
    report(raw.get("--advertise") == "$(POD_IP)"
           and env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP",
           "the workers advertise their pod IP (--advertise $(POD_IP), from status.podIP)")
    for flag, name in (("--listen", "worker"), ("--health-listen", "health")):
        host, _, port = str(opts.get(flag, "")).rpartition(":")
        report(host == "0.0.0.0" and port.isdigit() and port_number(c, name) == int(port),
               f"the workers' {flag} {opts.get(flag)} is on all interfaces and is container port `{name}`")
    mounts = mounts_of(c, spec)
    models = mounts.get("/models")
    report(opts.get("--model-root") == "/models" and models is not None and models[1]
           and "persistentVolumeClaim" in (models[0] or {}),
           "the workers load only under /models (--model-root), a claim mounted read-only")
    co_models = mounts_of(co["container"], co["spec"]).get("/models")
    report(bool(models and co_models) and models[0].get("persistentVolumeClaim", {}).get("claimName")
           == co_models[0].get("persistentVolumeClaim", {}).get("claimName"),
           "coordinator and workers mount the same model claim")
    shm = mounts.get("/dev/shm")
    report(shm is not None and (shm[0] or {}).get("emptyDir", {}).get("medium") == "Memory",
           "the workers' /dev/shm is a memory-backed emptyDir")
    res = c.get("resources", {})
    threads = opts.get("--threads")
    cpu = res.get("requests", {}).get("cpu")
    report(threads is not None and threads.isdigit() and cpu is not None
           and 1 <= int(threads) <= math.ceil(cpu_cores(cpu)),
           f"the workers' --threads ({threads}) fits the CPUs they request ({cpu})")
    gpu_limit = res.get("limits", {}).get("nvidia.com/gpu")
    if gpus:
        report(str(gpu_limit) == str(gpus), f"each worker has nvidia.com/gpu: {gpus} in its limits", f"limits {res.get('limits')}")
        report(opts.get("--device") == "cuda", "the workers compute on the GPU (--device cuda)", f"--device {opts.get('--device')}")
        report(":" in c.get("image", "") and "cuda" in c["image"].rsplit(":", 1)[1],
               "the workers use the CUDA image", c.get("image", ""))
    else:
        report(gpu_limit is None and "nvidia.com/gpu" not in str(res), "the workers ask for no GPU")
        report(opts.get("--device") == "cpu", "the workers compute on the CPU (--device cpu)", f"--device {opts.get('--device')}")
    # T + spares, from the other side: the budget
    pdbs = [o for o in objs if o["kind"] == "PodDisruptionBudget"
            and selects(o["spec"].get("selector", {}).get("matchLabels"), meta.get("labels", {}))]
    if report(len(pdbs) == 1, "one PodDisruptionBudget selects the workers"):
        ps = pdbs[0]["spec"]
        if is_lws:
            report(ps.get("maxUnavailable") == 1, "the workers' budget: one eviction at a time (maxUnavailable 1)")
        else:
            report(ps.get("minAvailable") == tp,
                   f"the workers' budget keeps T = {tp} workers through voluntary evictions (minAvailable {ps.get('minAvailable')})")
    report(not any(o["kind"] == "PodDisruptionBudget"
                   and selects(o["spec"].get("selector", {}).get("matchLabels"), co["meta"].get("labels", {}))
                   for o in objs),
           "no PodDisruptionBudget on the single coordinator (it would block every node drain)")


def allowed(policies, src, dst, port):
    """Would the NetworkPolicies in force let a pod labelled src reach a pod
    labelled dst on TCP port (same namespace)? A pod no policy selects for
    ingress takes everything."""
    chosen = [p for p in policies
              if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
              and (not p["spec"]["podSelector"] or selects(p["spec"]["podSelector"].get("matchLabels"), dst))]
    if not chosen:
        return True
    for p in chosen:
        for rule in p["spec"].get("ingress", []):
            peers = rule.get("from")
            peer_ok = peers is None or any(
                set(peer) == {"podSelector"} and (not peer["podSelector"] or selects(peer["podSelector"].get("matchLabels"), src))
                for peer in peers)
            ports = rule.get("ports")
            port_ok = ports is None or any(pp.get("protocol", "TCP") == "TCP" and pp.get("port") in (None, port)
                                           for pp in ports)
            if peer_ok and port_ok:
                return True
    return False


def check_network(objs, co_labels, wk_labels, co_opts, wk_opts):
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    report(bool(policies), "NetworkPolicies exist")
    other = {"app.kubernetes.io/name": "some-client"}
    http, grpc, cl = (int(co_opts.get(f, 0)) for f in ("--http-port", "--grpc-port", "--cluster-port"))
    wport = int(str(wk_opts.get("--listen", ":0")).rpartition(":")[2])
    gloo = 43117  # any port: Gloo's are chosen at rendezvous
    cases = [
        (other, co_labels, http, True, "a client pod -> coordinator HTTP"),
        (other, co_labels, grpc, True, "a client pod -> coordinator public gRPC"),
        (other, co_labels, cl, False, "a client pod -> coordinator cluster port"),
        (wk_labels, co_labels, cl, True, "a worker -> coordinator cluster port"),
        (other, wk_labels, wport, False, "a client pod -> worker port"),
        (other, wk_labels, gloo, False, "a client pod -> a worker's Gloo port"),
        (co_labels, wk_labels, wport, True, "the coordinator -> worker port"),
        (wk_labels, wk_labels, gloo, True, "a worker -> another worker's Gloo port (any TCP port)"),
        (wk_labels, wk_labels, wport, True, "a worker -> another worker's port"),
    ]
    for src, dst, port, want, what in cases:
        got = allowed(policies, src, dst, port)
        report(got == want, f"NetworkPolicy: {what} ({port}) is {'allowed' if want else 'denied'}",
               f"it is {'allowed' if got else 'denied'}")
    for p in policies:
        rules = p["spec"].get("ingress", [])
        report(all("from" in r and all(set(peer) == {"podSelector"} for peer in r["from"]) for r in rules),
               f"{name_of(p)}: every ingress rule names its pods (no ipBlock, no other namespace, no open rule)")


def check_services(objs, co_container, co_labels, wk_labels, co_opts):
    svcs = [o for o in objs if o["kind"] == "Service"]
    public = [s for s in svcs if selects(s["spec"].get("selector"), co_labels)
              and {str(p["port"]) for p in s["spec"]["ports"]} >= {co_opts.get("--http-port"), co_opts.get("--grpc-port")}]
    if report(len(public) == 1, "a Service serves the coordinator's HTTP and public gRPC ports"):
        s = public[0]
        ok = all(port_number(co_container, p.get("targetPort", p["port"])) == int(p["port"]) for p in s["spec"]["ports"])
        report(ok, f"Service {s['metadata']['name']}'s ports reach the coordinator's container ports")
        report(not s["spec"].get("publishNotReadyAddresses"), f"Service {s['metadata']['name']} sends clients to a ready coordinator only")
        report(co_opts.get("--cluster-port") not in {str(p["port"]) for p in s["spec"]["ports"]},
               f"Service {s['metadata']['name']} does not expose the cluster port")
    report(not any(selects(s["spec"].get("selector"), wk_labels) for s in svcs), "no Service in front of the workers")


def cmd_properties(a):
    properties(load(a.file), a)
    finish()


def properties(objs, a):
    """Every property, reported one by one; returns False if one failed."""
    failed = results["failed"]
    for o in objs:
        if o["kind"] not in ("Namespace",):
            report(o["metadata"].get("namespace") == "facet", f"{name_of(o)} is in namespace facet")
    pods = templates(objs)
    for owner, role, meta, spec, _ in pods:
        check_pod_security(owner, role, meta, spec)
    cos = [p for p in pods if p[1] == "coordinator"]
    wks = [p for p in pods if p[1] == "worker"]
    if not report(len(cos) == 1 and len(wks) == 1, "one coordinator pod template and one worker pod template",
                  f"{len(cos)} and {len(wks)}"):
        return False
    co_owner, _, co_meta, co_spec, co_lws = cos[0]
    co_c, co_opts = check_coordinator(objs, co_owner, co_meta, co_spec, co_lws, a.tp, a.credential)
    if co_c is None:
        return False
    wk_owner, _, wk_meta, wk_spec, wk_lws = wks[0]
    check_workers(objs, wk_owner, wk_meta, wk_spec, wk_lws, a.tp, a.workers, a.gpus, a.credential, co_opts,
                  {"container": co_c, "meta": co_meta, "spec": co_spec})
    wk_c = facet_container(wk_spec)
    wk_opts = options(sum(command_line(wk_c, wk_lws), [])[2:]) if wk_c else {}
    check_network(objs, co_meta.get("labels", {}), wk_meta.get("labels", {}), co_opts, wk_opts)
    check_services(objs, co_c, co_meta.get("labels", {}), wk_meta.get("labels", {}), co_opts)
    return results["failed"] == failed


# ---- mutants: the properties check catches each mistake ---------------------------------------------

def _pod(objs, role):
    for owner, r, meta, spec, _ in templates(objs):
        if r == role:
            return spec


def _obj(objs, kind, pred=lambda o: True):
    return next(o for o in objs if o["kind"] == kind and pred(o))


def _set_arg(objs, role, flag, value):
    c = facet_container(_pod(objs, role))
    for key in ("command", "args"):
        argv = c.get(key, [])
        if flag in argv:
            argv[argv.index(flag) + 1] = value


def _drop(objs, kind, pred=lambda o: True):
    objs.remove(_obj(objs, kind, pred))


def _co(objs):
    return facet_container(_pod(objs, "coordinator"))


def _wk(objs):
    return facet_container(_pod(objs, "worker"))


def _one_fewer(objs):
    if any(d["kind"] == LWS_KIND for d in objs):
        lwt = _obj(objs, LWS_KIND)["spec"]["leaderWorkerTemplate"]
        lwt["size"] -= 1
    else:
        spec = _obj(objs, "Deployment", lambda d: d["metadata"]["name"] == "facet-worker")["spec"]
        spec["replicas"] -= 1


def _deploy_only(f):
    f.deploy_only = True
    return f


MUTANTS = [
    ("the grace period no longer covers the drain (30 s)",
     lambda o: _pod(o, "coordinator").update(terminationGracePeriodSeconds=30)),
    ("no readinessProbe on the coordinator", lambda o: _co(o).pop("readinessProbe")),
    ("no preStop on the coordinator", lambda o: _co(o).pop("lifecycle")),
    ("the coordinator runs as root", lambda o: _pod(o, "coordinator")["securityContext"].update(runAsUser=0)),
    ("a worker capability added (NET_ADMIN)",
     lambda o: _wk(o)["securityContext"]["capabilities"].update(add=["NET_ADMIN"])),
    ("a writable root filesystem on the workers",
     lambda o: _wk(o)["securityContext"].update(readOnlyRootFilesystem=False)),
    ("the cluster token in the environment, from a Secret",
     lambda o: _wk(o)["env"].append({"name": "FACET_CLUSTER_TOKEN", "valueFrom": {
         "secretKeyRef": {"name": "facet-cluster-token", "key": "token"}}})),
    ("a credential file outside any Secret", lambda o: _set_arg(o, "coordinator", "--api-key-file", "/tmp/key")),
    ("a world-readable Secret volume (mode 0644)",
     lambda o: next(v for v in _pod(o, "worker")["volumes"] if "secret" in v)["secret"].update(defaultMode=0o644)),
    ("the workers advertise a fixed address", lambda o: _set_arg(o, "worker", "--advertise", "10.0.0.9")),
    ("one worker fewer (the spare gone)", lambda o: _one_fewer(o)),
    ("no PodDisruptionBudget for the workers", lambda o: _drop(o, "PodDisruptionBudget")),
    ("no NetworkPolicy for the workers", lambda o: _drop(o, "NetworkPolicy", lambda p: "worker" in p["metadata"]["name"])),
    ("the workers' ports open to every pod", lambda o: _obj(o, "NetworkPolicy", lambda p: "worker" in p["metadata"]["name"])
     ["spec"]["ingress"].append({"from": [{"podSelector": {}}]})),
    ("a GPU worker without nvidia.com/gpu", lambda o: _wk(o)["resources"]["limits"].pop("nvidia.com/gpu", None)
     if "nvidia.com/gpu" in _wk(o)["resources"].get("limits", {}) else _wk(o)["resources"]["limits"].update(
         {"nvidia.com/gpu": 1})),
    ("the coordinator's Deployment rolls (two coordinators at once)", _deploy_only(
        lambda o: _obj(o, "Deployment", lambda d: d["metadata"]["name"] == "facet-coordinator")["spec"].update(
            strategy={"type": "RollingUpdate"}))),
    ("the workers' Service hides a coordinator that is not ready", _deploy_only(
        lambda o: _obj(o, "Service", lambda s: s["metadata"]["name"] == "facet-cluster")["spec"].pop(
            "publishNotReadyAddresses"))),
]


def passes(objs, a):
    """The properties check on objs, silently and without counting its lines."""
    saved = dict(results)
    results["quiet"] = True
    try:
        return properties(objs, a)
    finally:
        results.update(saved)


def cmd_mutants(a):
    base = load(a.file)
    report(passes(copy.deepcopy(base), a), f"{a.file} passes the properties check unchanged")
    lws = any(o["kind"] == LWS_KIND for o in base)
    for what, mutate in MUTANTS:
        if lws and getattr(mutate, "deploy_only", False):
            continue
        objs = copy.deepcopy(base)
        mutate(objs)
        report(not passes(objs, a), f"the properties check catches a mutant: {what}")
    finish()


def cmd_security(a):
    objs = load(a.file)
    pods = templates(objs)
    report(bool(pods), f"{a.file} makes pods")
    for owner, role, meta, spec, _ in pods:
        check_pod_security(owner, role, meta, spec)
    finish()


# ---- commands, worker-probes ----------------------------------------------------------------------

def cmd_commands(a):
    objs = load(a.file)
    os.makedirs(a.outdir, exist_ok=True)
    for owner, role, meta, spec, is_lws in templates(objs):
        c = facet_container(spec)
        if c is None or role not in ("coordinator", "worker"):
            continue
        cmd, args = command_line(c, is_lws)
        argv = cmd[1:] + args  # cmd[0] is the binary; the test runs the one it was given
        unexpanded = [x for x in argv if re.search(r"\$\(\w+\)", x)]
        report(not unexpanded, f"{role}: every $(VAR) of its command line is defined", str(unexpanded))
        for suffix, words in (("args", argv), ("noargs", cmd[1:])):
            with open(os.path.join(a.outdir, f"{role}.{suffix}"), "wb") as f:
                f.write(b"".join(w.encode() + b"\0" for w in words))
        print(f"   {role}: facet {' '.join(argv)}")
    finish()


def cmd_worker_probes(a):
    objs = load(a.file)
    wks = [p for p in templates(objs) if p[1] == "worker"]
    if not report(len(wks) == 1, "one worker pod template"):
        finish()
    c = facet_container(wks[0][3])
    probes = {k: c[k] for k in ("livenessProbe", "readinessProbe", "startupProbe") if k in c}
    health = port_number(c, "health")
    grpc = {k: p for k, p in probes.items() if "grpc" in p}
    if a.status == "NOT_SERVING":
        report(not grpc, "an idle worker answers NOT_SERVING on --health-listen, so the workers have no gRPC probe "
               "(it would restart spares, or keep them unready)", f"probes {sorted(grpc)}")
        report(not probes, "the workers have no probe at all (docs/DEPLOYMENT.md, Probes)", f"probes {sorted(probes)}")
    elif a.status == "SERVING":
        p = probes.get("livenessProbe", {}).get("grpc", {})
        report(p.get("port") == health and p.get("service", "") == "",
               "an idle worker answers SERVING on --health-listen: the workers have a gRPC livenessProbe on it, "
               "for the process (service \"\")", f"livenessProbe.grpc {p}")
        gated = [k for k, q in grpc.items() if k != "livenessProbe"]
        report(not gated, "no other gRPC probe (a readiness gate on membership would keep spares unready)",
               f"probes {gated}")
    else:
        report(False, "an idle worker answers SERVING or NOT_SERVING on --health-listen", f"it answered {a.status!r}")
    finish()


# ---- lws-schema -----------------------------------------------------------------------------------

def unknown_fields(value, schema, path, out):
    """Fields the API server would prune from value (a typo it would drop
    without a word): properties the schema does not declare."""
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is not None and not extra and not schema.get("x-kubernetes-preserve-unknown-fields"):
            for k, v in value.items():
                if k not in props:
                    out.append(f"{path}.{k}")
                else:
                    unknown_fields(v, props[k], f"{path}.{k}", out)
        elif isinstance(extra, dict):
            for k, v in value.items():
                unknown_fields(v, extra, f"{path}.{k}", out)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            unknown_fields(v, schema["items"], f"{path}[{i}]", out)


def lws_errors(obj, crd):
    import jsonschema
    version = obj["apiVersion"].split("/")[1]
    group = obj["apiVersion"].split("/")[0]
    if crd["spec"]["group"] != group or crd["spec"]["names"]["kind"] != obj["kind"]:
        return [f"the CRD is {crd['spec']['names']['kind']}.{crd['spec']['group']}"]
    vs = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served")]
    if not vs:
        return [f"the CRD serves no version {version}"]
    schema = vs[0]["schema"]["openAPIV3Schema"]
    errors = [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(obj)]
    body = {k: v for k, v in obj.items() if k != "metadata"}  # metadata is the API server's ObjectMeta
    unknown = []
    unknown_fields(body, {**schema, "properties": {k: v for k, v in schema["properties"].items() if k != "metadata"}},
                   "", unknown)
    return errors + [f"{u}: not in the schema (the API server would drop it)" for u in unknown]


def cmd_lws_schema(a):
    objs = [o for o in load(a.file) if o["kind"] == LWS_KIND]
    with open(a.crd) as f:
        crd = next(d for d in yaml.safe_load_all(f) if d and d.get("kind") == "CustomResourceDefinition")
    if not report(len(objs) == 1, "one LeaderWorkerSet in the rendered manifests"):
        finish()
    errs = lws_errors(objs[0], crd)
    report(not errs, f"{name_of(objs[0])} is valid against the CRD's openAPIV3Schema ({os.path.basename(a.crd)})",
           "; ".join(errs[:5]))
    bad = copy.deepcopy(objs[0])
    bad["spec"]["leaderWorkerTemplate"]["restartPolicy"] = "Bogus"
    report(bool(lws_errors(bad, crd)), "the schema check refuses restartPolicy: Bogus")
    bad = copy.deepcopy(objs[0])
    bad["spec"]["leaderWorkerTemplate"]["restartpolicy"] = "None"
    report(bool(lws_errors(bad, crd)), "the schema check refuses an unknown field (restartpolicy)")
    finish()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("validate")
    p.add_argument("file")
    p.add_argument("versions", nargs="+")
    p = sub.add_parser("properties")
    p.add_argument("file")
    p.add_argument("--tp", type=int, required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--gpus", type=int, default=0)
    p.add_argument("--credential", choices=("token", "tls"), required=True)
    p = sub.add_parser("security")
    p.add_argument("file")
    p = sub.add_parser("mutants")
    p.add_argument("file")
    p.add_argument("--tp", type=int, required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--gpus", type=int, default=0)
    p.add_argument("--credential", choices=("token", "tls"), required=True)
    p = sub.add_parser("commands")
    p.add_argument("file")
    p.add_argument("outdir")
    p = sub.add_parser("worker-probes")
    p.add_argument("file")
    p.add_argument("status")
    p = sub.add_parser("lws-schema")
    p.add_argument("file")
    p.add_argument("crd")
    a = ap.parse_args()
    {"validate": cmd_validate, "properties": cmd_properties, "mutants": cmd_mutants, "security": cmd_security, "commands": cmd_commands,
     "worker-probes": cmd_worker_probes, "lws-schema": cmd_lws_schema}[a.cmd](a)


if __name__ == "__main__":
    main()
