"""The grove operator on the local cluster: installed by `up`, run as a host process under its own identity.

`install` (once per cluster) server-side-applies the CRDs (`deploy/helm/grove-py/crds`) and the operator's RBAC
(from the release manifest `deploy/release/grove-py.yaml`: namespace, ServiceAccount, ClusterRoles, Role and
bindings — not the Deployment or Service), writes an OperatorConfiguration in URL mode (webhooks on
127.0.0.1:<free port>, certificates under the state dir) and applies the URL-mode webhook configurations.

`start` mints a token for ServiceAccount grove-system/grove-operator (TokenRequest), writes
`<state>/operator.kubeconfig` with it (never the admin certificates: the operator must act as itself, so
that the managed-resource protection can tell it apart from a user), spawns
`python -m grove_operator.main` detached like the other components, records its PID in
`<state>/operator.json` and waits until it is ready: `/readyz` answers 200, every webhook configuration
carries the injected caBundle, and the apiserver can call the webhooks (an invalid ClusterTopologyBinding
is refused by our webhook in a dry run).

grove_api and webhook (pydantic) are imported lazily, where needed, so the other `grove-cluster` commands
stay quick to start.

`start`/`stop`/`restart` take the state lock; the `_`-prefixed variants are for `cluster.up`, which
already holds it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localcluster import api, ports, processes
from localcluster.credentials import CONTEXT
from localcluster.processes import ComponentFailed
from localcluster.securefile import write_atomic
from localcluster.state import ClusterInfo

ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = ROOT / "deploy" / "helm" / "grove-py" / "crds"
RELEASE_MANIFEST = ROOT / "deploy" / "release" / "grove-py.yaml"
# What the local cluster applies from the release manifest (the chart rendered for grove-system): the
# operator's identity and rights, exactly as an install grants them. Not the Deployment, Service or
# webhook configurations: the operator runs as a host process here, reached by URL.
RBAC_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
NAMESPACE = "grove-system"
SERVICE_ACCOUNT = "grove-operator"
FIELD_MANAGER = "grove-cluster"
NAME = "grove-operator"
STATE_FILE = "operator.json"
KUBECONFIG = "operator.kubeconfig"
TOKEN_SECONDS = 365 * 24 * 3600
READY_TIMEOUT = 60.0

Progress = Callable[[str], None]


@dataclass
class OperatorState:
    """`<state>/operator.json`: the operator process and its ports."""

    pid: int = 0
    webhook_port: int = 0
    health_port: int = 0
    log: str = ""
    argv: list[str] = field(default_factory=list)
    stopped: bool = False  # stopped on purpose (`grove-cluster operator stop`)


def _dir(info: ClusterInfo) -> Path:
    return info.state_dir / "operator"


def cert_dir(info: ClusterInfo) -> Path:
    """The operator's serving certificate (tls.crt, tls.key) and CA (ca.crt), provisioned by the operator."""
    return _dir(info) / "certs"


def config_path(info: ClusterInfo) -> Path:
    return _dir(info) / "config.yaml"


def kubeconfig_path(info: ClusterInfo) -> Path:
    return info.state_dir / KUBECONFIG


def log_path(info: ClusterInfo) -> Path:
    return info.state_dir / "logs" / f"{NAME}.log"


def load_state(state_dir: Path) -> OperatorState | None:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
        return OperatorState(**data)
    except (OSError, ValueError, TypeError):
        return None


def _save_state(state_dir: Path, state: OperatorState) -> None:
    path = state_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(tmp, path)


def running_pid(state_dir: Path) -> int | None:
    """The PID of this cluster's operator when it runs."""
    state = load_state(state_dir)
    if state and state.pid and processes.belongs_to(state.pid, processes.marker(state_dir)):
        return state.pid
    return None


def stray_pids(state_dir: Path) -> list[int]:
    """Operator processes of this cluster, recorded or not (for `down` after a lost state file)."""
    marker = processes.marker(state_dir)
    found = [
        pid
        for pid, argv in processes.others()
        if "grove_operator.main" in argv and any(marker in arg for arg in argv)
    ]
    state = load_state(state_dir)
    if state and state.pid and state.pid not in found and processes.belongs_to(state.pid, marker):
        found.append(state.pid)
    return found


# --- talking to the apiserver as admin (sync, stdlib: `up` runs outside any event loop) --------------


def _request(
    info: ClusterInfo,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """(status, decoded JSON body or text) of an admin request to the apiserver."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{info.apiserver_url}{path}", data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, context=info.ssl_context(), timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


_PLURALS = {
    "CustomResourceDefinition": "customresourcedefinitions",
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
}


def object_path(doc: dict[str, Any]) -> str:
    """The REST path of `doc` (for the few kinds applied here)."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    namespace = doc["metadata"].get("namespace")
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{ns}/{_PLURALS[kind]}/{doc['metadata']['name']}"


def apply(info: ClusterInfo, doc: dict[str, Any]) -> None:
    """Server-side apply `doc` as field manager grove-cluster (force: we own these objects)."""
    query = urllib.parse.urlencode({"fieldManager": FIELD_MANAGER, "force": "true"})
    status, body = _request(
        info, "PATCH", f"{object_path(doc)}?{query}", doc, content_type="application/apply-patch+yaml"
    )
    if status not in (200, 201):
        raise ComponentFailed(
            f"applying {doc['kind']} {doc['metadata']['name']} failed: HTTP {status}: {body}"
        )


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _wait_established(info: ClusterInfo, names: list[str], timeout: float = 60.0) -> None:
    def established() -> bool:
        for name in names:
            status, body = _request(
                info, "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )
            conditions = (body or {}).get("status", {}).get("conditions", []) if status == 200 else []
            if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                return False
        return True

    processes.wait_for("Grove CRDs established", established, timeout, interval=0.2)


def install_crds(info: ClusterInfo) -> None:
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in _yaml_docs(path):
            apply(info, doc)
            names.append(doc["metadata"]["name"])
    _wait_established(info, names)


def install_rbac(info: ClusterInfo) -> None:
    for doc in _yaml_docs(RELEASE_MANIFEST):
        if doc["kind"] in RBAC_KINDS:
            apply(info, doc)


# --- configuration, identity, webhook configurations -------------------------------------------------


def write_config(info: ClusterInfo, webhook_port: int, health_port: int, metrics_port: int) -> Path:
    """The operator's OperatorConfiguration: URL mode on loopback, certificates under the state dir."""
    config = {
        "apiVersion": "operator.config.grove.io/v1alpha1",
        "kind": "OperatorConfiguration",
        "logLevel": "info",
        "logFormat": "json",
        "server": {
            "webhooks": {
                "mode": "url",
                "host": ports.HOST,
                "bindAddress": ports.HOST,
                "port": webhook_port,
                "namespace": NAMESPACE,
                "serverCertDir": str(cert_dir(info)),
                "certProvisionMode": "auto",
            },
            "healthProbes": {"bindAddress": ports.HOST, "port": health_port},
            "metrics": {"bindAddress": ports.HOST, "port": metrics_port},
        },
        "authorizer": {"enabled": True},
        # The fake nodes carry zone/block/rack labels: topology constraints work here as on a real cluster.
        "topologyAwareScheduling": {"enabled": True},
    }
    path = config_path(info)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _read_config(info: ClusterInfo) -> dict[str, Any]:
    data = yaml.safe_load(config_path(info).read_text())
    assert isinstance(data, dict)
    return data


def metrics_url(info: ClusterInfo) -> str:
    """The operator's Prometheus endpoint (plain HTTP, `server.metrics` of its configuration)."""
    endpoint = _read_config(info)["server"]["metrics"]
    return f"http://{endpoint['bindAddress']}:{endpoint['port']}/metrics"


def apply_webhook_configurations(info: ClusterInfo) -> None:
    """The URL-mode rendering of our webhook configurations (caBundle: injected by the operator)."""
    from grove_api.operatorconfig import load
    from webhook import registration

    for doc in registration.for_config(load(config_path(info)), SERVICE_ACCOUNT):
        apply(info, doc)


def request_token(info: ClusterInfo, seconds: int = TOKEN_SECONDS) -> str:
    """A TokenRequest for grove-system/grove-operator (bound to the ServiceAccount, `seconds` long)."""
    path = f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token"
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    }
    status, out = _request(info, "POST", path, body)
    if status != 201 or not isinstance(out, dict) or not out.get("status", {}).get("token"):
        raise ComponentFailed(f"TokenRequest for {NAMESPACE}/{SERVICE_ACCOUNT} failed: HTTP {status}: {out}")
    token: str = out["status"]["token"]
    return token


def write_kubeconfig(info: ClusterInfo) -> Path:
    """`<state>/operator.kubeconfig`: the operator's ServiceAccount token (mode 0600)."""
    token = request_token(info)
    user = f"{NAMESPACE}:{SERVICE_ACCOUNT}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": info.apiserver_url,
                    "certificate-authority-data": base64.b64encode(info.ca_file.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user, "namespace": NAMESPACE}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path = kubeconfig_path(info)
    write_atomic(path, yaml.safe_dump(doc, sort_keys=False).encode())
    return path


def install(info: ClusterInfo, progress: Progress) -> None:
    """CRDs, RBAC, configuration and webhook configurations (idempotent)."""
    progress("installing Grove CRDs and the grove-operator RBAC")
    install_crds(info)
    install_rbac(info)
    if not config_path(info).exists():
        webhook, health, metrics = ports.free_ports(3)
        write_config(info, webhook, health, metrics)
    apply_webhook_configurations(info)


# --- the process -------------------------------------------------------------------------------------


def _argv(info: ClusterInfo, webhooks_only: bool = False) -> list[str]:
    return [
        sys.executable,
        "-m",
        "grove_operator.main",
        f"--config={config_path(info)}",
        f"--kubeconfig={kubeconfig_path(info)}",
        *(["--webhooks-only"] if webhooks_only else []),
    ]


def _ensure_ports_free(info: ClusterInfo) -> bool:
    """Pick new ports (and re-register the webhooks) when the recorded ones were taken meanwhile;
    True when it did."""
    config = _read_config(info)
    server = config["server"]
    wanted = (server["webhooks"]["port"], server["healthProbes"]["port"])
    if all(ports.is_free(p, reuse_address=True) for p in wanted):
        return False
    webhook, health, metrics = ports.free_ports(3)
    write_config(info, webhook, health, metrics)
    apply_webhook_configurations(info)
    return True


def _ready(health_port: int) -> bool:
    code, _ = api.get(f"http://{ports.HOST}:{health_port}/readyz", None, timeout=2.0)
    return code == 200


def _ca_bundles_injected(info: ClusterInfo) -> bool:
    from webhook import registration

    for kind, name in registration.CONFIGURATIONS:
        plural = _PLURALS[kind]
        status, body = _request(info, "GET", f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}")
        if status == 404:
            continue
        if status != 200 or not all(
            w.get("clientConfig", {}).get("caBundle") for w in body.get("webhooks", [])
        ):
            return False
    return True


INVALID_TOPOLOGY = {
    "apiVersion": "grove.io/v1alpha1",
    "kind": "ClusterTopologyBinding",
    "metadata": {"name": "grove-cluster-webhook-probe"},
    "spec": {"levels": [{"domain": "zone", "key": "a"}, {"domain": "zone", "key": "b"}]},
}


# Passes the CRD schema, so only the validating webhook can refuse it (minAvailable > replicas).
INVALID_PODCLIQUESET = {
    "apiVersion": "grove.io/v1alpha1",
    "kind": "PodCliqueSet",
    "metadata": {"name": "grove-cluster-webhook-probe", "namespace": "default"},
    "spec": {
        "replicas": 1,
        "template": {
            "cliques": [
                {
                    "name": "probe",
                    "spec": {
                        "replicas": 1,
                        "minAvailable": 2,
                        "podSpec": {"containers": [{"name": "c", "image": "busybox"}]},
                    },
                }
            ]
        },
    },
}


def _refused_by_webhook(info: ClusterInfo, path: str, doc: dict[str, Any]) -> bool:
    status, body = _request(info, "POST", f"{path}?dryRun=All", doc)
    message = (body or {}).get("message", "") if isinstance(body, dict) else str(body)
    return status in (400, 403, 422) and "denied the request" in message


def _webhook_answers(info: ClusterInfo) -> bool:
    """The apiserver reaches our webhooks (TLS verified with the injected caBundle) and gets their verdicts:
    a dry-run create of an invalid ClusterTopologyBinding and of an invalid PodCliqueSet is refused."""
    return _refused_by_webhook(
        info, "/apis/grove.io/v1alpha1/clustertopologybindings", INVALID_TOPOLOGY
    ) and _refused_by_webhook(
        info, "/apis/grove.io/v1alpha1/namespaces/default/podcliquesets", INVALID_PODCLIQUESET
    )


def _wait_ready(info: ClusterInfo, state: OperatorState, timeout: float) -> None:
    def dead() -> str | None:
        if processes.is_alive(state.pid):
            return None
        return (
            f"grove-operator (pid {state.pid}) exited during startup; last lines of {state.log}:\n"
            f"{processes.log_tail(Path(state.log))}"
        )

    processes.wait_for(
        "grove-operator /readyz", lambda: _ready(state.health_port), timeout, dead, interval=0.1
    )
    processes.wait_for("the webhook caBundle injection", lambda: _ca_bundles_injected(info), timeout, dead)
    processes.wait_for(
        "the apiserver to call the grove webhooks", lambda: _webhook_answers(info), timeout, dead
    )


def _start(
    info: ClusterInfo,
    progress: Progress,
    timeout: float = READY_TIMEOUT,
    *,
    webhooks_only: bool = False,
) -> OperatorState:
    """Start the operator unless it runs; wait until it is ready. Caller holds the state lock.

    `webhooks_only` runs just the admission webhooks, without the reconciler (for benchmarks that measure
    admission alone)."""
    existing = load_state(info.state_dir)
    pid = running_pid(info.state_dir)
    if existing is not None and pid is not None:
        return existing
    if not config_path(info).exists():
        install(info, progress)
    elif not _ensure_ports_free(info):
        apply_webhook_configurations(info)  # keep the registrations as the current code renders them
    write_kubeconfig(info)
    config = _read_config(info)
    argv = _argv(info, webhooks_only)
    log = log_path(info)
    env = {
        **os.environ,
        "GROVE_OPERATOR_SERVICE_ACCOUNT_NAME": SERVICE_ACCOUNT,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    env.pop("KUBECONFIG", None)
    progress(f"starting grove-operator on https://{ports.HOST}:{config['server']['webhooks']['port']}")
    pid = processes.spawn(argv, log, env)
    state = OperatorState(
        pid=pid,
        webhook_port=config["server"]["webhooks"]["port"],
        health_port=config["server"]["healthProbes"]["port"],
        log=str(log),
        argv=argv,
    )
    _save_state(info.state_dir, state)
    try:
        _wait_ready(info, state, timeout)
    except BaseException:
        processes.stop([pid], processes.marker(info.state_dir))
        raise
    return state


def _stop(info: ClusterInfo, grace: float = 10.0) -> list[int]:
    """Stop the operator (SIGTERM: it drains and exits); returns the stopped PIDs. Caller holds the lock."""
    pids = stray_pids(info.state_dir)
    survivors = processes.stop(pids, processes.marker(info.state_dir), grace=grace)
    if survivors:
        raise ComponentFailed(f"could not stop grove-operator pids {survivors}")
    state = load_state(info.state_dir) or OperatorState()
    state.stopped = True
    _save_state(info.state_dir, state)
    return pids


def ensure_running(info: ClusterInfo, progress: Progress) -> OperatorState:
    """For `up` on a running cluster: (re)start the operator when it is not running. Caller holds the lock."""
    return _start(info, progress)


# --- public API (takes the state lock) ---------------------------------------------------------------


@contextlib.contextmanager
def _locked(state_dir: Path | None) -> Iterator[ClusterInfo]:
    from localcluster import cluster

    state_dir = Path(state_dir).absolute() if state_dir is not None else cluster.default_state_dir()
    with cluster.state_lock(state_dir):
        info = cluster.load(state_dir)
        if info is None or not info.complete or not cluster.apiserver_ready(info):
            raise ComponentFailed(f"no running cluster in {state_dir}; start one with `grove-cluster up`")
        yield info


def _quiet(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start(
    state_dir: Path | None = None, progress: Progress = _quiet, *, webhooks_only: bool = False
) -> OperatorState:
    """Start the operator of the cluster in `state_dir` (no-op when it runs) and wait until it is ready."""
    with _locked(state_dir) as info:
        return _start(info, progress, webhooks_only=webhooks_only)


def stop(state_dir: Path | None = None) -> list[int]:
    """Stop the operator: its webhooks then fail (failurePolicy Fail) until it is started again."""
    with _locked(state_dir) as info:
        return _stop(info)


def kill(state_dir: Path | None = None) -> list[int]:
    """SIGKILL the operator, as a crash would (no drain, no cleanup); `start` brings it back."""
    with _locked(state_dir) as info:
        pids = stray_pids(info.state_dir)
        survivors = processes.kill(pids, processes.marker(info.state_dir))
        if survivors:
            raise ComponentFailed(f"could not kill grove-operator pids {survivors}")
        return pids


def restart(state_dir: Path | None = None, progress: Progress = _quiet) -> OperatorState:
    with _locked(state_dir) as info:
        _stop(info)
        return _start(info, progress)


@dataclass
class OperatorStatus:
    pid: int
    alive: bool
    ready: bool
    webhook_port: int
    health_port: int
    log: str
    stopped: bool


def status(state_dir: Path) -> OperatorStatus | None:
    state = load_state(state_dir)
    if state is None:
        return None
    alive = running_pid(state_dir) is not None
    ready = False
    if alive:
        with contextlib.suppress(OSError):
            ready = _ready(state.health_port)
    return OperatorStatus(
        state.pid, alive, ready, state.webhook_port, state.health_port, state.log, state.stopped
    )
