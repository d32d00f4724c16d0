"""What a kubelet decides from a pod spec, as pure functions: the host node's (localcluster/hostnode.py) and
the init runner's rootfs mode's rules, kept apart from their I/O so they can be tested without a cluster.

- which objects a pod needs (ConfigMaps, Secrets, ServiceAccount tokens) before its containers can start;
- the files of its volumes (configMap, secret, projected, downwardAPI; emptyDir and hostPath are
  directories), their modes, and fsGroup ownership;
- each container's environment (the image's, Service links, envFrom, env with `$(VAR)` expansion and
  fieldRef / secretKeyRef / configMapKeyRef), command line, user and groups, and mounts;
- probes (what to call, and the success/failure thresholds), restart decisions and crash-loop back-off;
- the pod status a kubelet reports: phase, conditions, init and regular container statuses.

The rules follow the kubelet's (pkg/kubelet: kubelet_pods.go, status/generate.go, prober/, envvars/)
where this stand-in implements a feature at all; what it leaves out is listed in docs/local-cluster.md.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localcluster.images import ImageConfig, ImageRootfs
from localcluster.sandbox import Mount, Spec

Obj = Mapping[str, Any]

CONFIG_MAP, SECRET = "ConfigMap", "Secret"
DEFAULT_MODE = 0o644
DEFAULT_TOKEN_SECONDS = 3600
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
BACKOFF_INITIAL, BACKOFF_MAX = 10.0, 300.0  # the kubelet's crash-loop back-off
BACKOFF_RESET = 600.0  # a container that ran this long starts its back-off from zero again
DEFAULT_GRACE = 30


class ConfigError(Exception):
    """The container cannot be created as specified (the kubelet's CreateContainerConfigError)."""


class MissingObject(Exception):
    """A ConfigMap, Secret or key a volume needs does not exist (yet): the pod waits, as on a kubelet."""


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def now_rfc3339(clock: dt.datetime | None = None) -> str:
    return (clock or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- fields (downward API) ---------------------------------------------------------------------------------
def field_value(pod: Obj, path: str, pod_ip: str = "", host_ip: str = "") -> str:
    """The value of a fieldRef `path`, as the kubelet renders it; ConfigError for unsupported paths."""
    m = meta(pod)
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        values: Mapping[str, str] = m.get(source) or {}
        if path == prefix:
            return "".join(f'{key}="{_quote(value)}"\n' for key, value in sorted(values.items()))
        if path.startswith(f"{prefix}['") and path.endswith("']"):
            return str(values.get(path[len(prefix) + 2 : -2], ""))
    simple = {
        "metadata.name": m.get("name"),
        "metadata.namespace": m.get("namespace"),
        "metadata.uid": m.get("uid"),
        "spec.nodeName": spec(pod).get("nodeName"),
        "spec.serviceAccountName": spec(pod).get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path not in simple:
        raise ConfigError(f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# --- objects a pod needs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenRequest:
    """A projected ServiceAccount token: where it goes and what the TokenRequest asks for."""

    volume: str
    path: str
    audience: str
    expiration_seconds: int


def _projections(volume: Obj) -> list[Obj]:
    return list((volume.get("projected") or {}).get("sources") or ())


def referenced_objects(pod: Obj) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod's volumes and containers read."""
    refs: set[tuple[str, str]] = set()
    for volume in spec(pod).get("volumes") or ():
        if volume.get("configMap"):
            refs.add((CONFIG_MAP, volume["configMap"].get("name", "")))
        if volume.get("secret"):
            refs.add((SECRET, volume["secret"].get("secretName", "")))
        for source in _projections(volume):
            if source.get("configMap"):
                refs.add((CONFIG_MAP, source["configMap"].get("name", "")))
            if source.get("secret"):
                refs.add((SECRET, source["secret"].get("name", "")))
    for container in all_containers(pod):
        for source in container.get("envFrom") or ():
            if source.get("configMapRef"):
                refs.add((CONFIG_MAP, source["configMapRef"].get("name", "")))
            if source.get("secretRef"):
                refs.add((SECRET, source["secretRef"].get("name", "")))
        for var in container.get("env") or ():
            value_from = var.get("valueFrom") or {}
            if value_from.get("configMapKeyRef"):
                refs.add((CONFIG_MAP, value_from["configMapKeyRef"].get("name", "")))
            if value_from.get("secretKeyRef"):
                refs.add((SECRET, value_from["secretKeyRef"].get("name", "")))
    return refs


def token_requests(pod: Obj) -> list[TokenRequest]:
    """The projected ServiceAccount tokens the pod's volumes hold."""
    found = []
    for volume in spec(pod).get("volumes") or ():
        for source in _projections(volume):
            token = source.get("serviceAccountToken")
            if token:
                found.append(
                    TokenRequest(
                        volume=str(volume.get("name")),
                        path=str(token.get("path") or "token"),
                        audience=str(token.get("audience") or ""),
                        expiration_seconds=int(token.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS),
                    )
                )
    return found


def token_request_body(pod: Obj, request: TokenRequest) -> dict[str, Any]:
    """The TokenRequest for `request`, bound to the pod (the token dies with it), as a kubelet sends it."""
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [request.audience] if request.audience else [],
            "expirationSeconds": request.expiration_seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta(pod).get("name"),
                "uid": meta(pod).get("uid"),
            },
        },
    }


def token_refresh_after(expiration_seconds: int) -> float:
    """Seconds after issue when the kubelet replaces a token: at 80 % of its life, at most a day."""
    return min(0.8 * expiration_seconds, 86400.0)


# --- volumes -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VolumeFile:
    path: str  # relative to the volume's directory
    data: bytes
    mode: int


@dataclass(frozen=True)
class Volume:
    """One pod volume as the host node makes it: `files` written into a directory of the pod's
    (configMap, secret, projected, downwardAPI), an empty directory (emptyDir), or a host path."""

    name: str
    kind: str  # "files", "emptyDir" or "hostPath"
    files: tuple[VolumeFile, ...] = ()
    host_path: str = ""
    host_path_type: str = ""


Objects = Mapping[tuple[str, str], Obj | None]


def _object_data(obj: Obj, kind: str) -> dict[str, bytes]:
    if kind == SECRET:
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _key_files(
    kind: str, name: str, source: Obj, objects: Objects, default_mode: int, where: str
) -> list[VolumeFile]:
    """The files of a configMap/secret volume or projection: its `items`, or every key."""
    obj = objects.get((kind, name))
    optional = bool(source.get("optional"))
    if obj is None:
        if optional:
            return []
        raise MissingObject(f"{where}: {kind.lower()} {name!r} not found")
    data = _object_data(obj, kind)
    items = source.get("items")
    if not items:
        return [VolumeFile(key, value, default_mode) for key, value in sorted(data.items())]
    files = []
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise MissingObject(f"{where}: key {key!r} not found in {kind.lower()} {name!r}")
        files.append(VolumeFile(item.get("path") or key, data[key], int(item.get("mode", default_mode))))
    return files


def _downward_files(pod: Obj, items: Iterable[Obj], default_mode: int) -> list[VolumeFile]:
    files = []
    for item in items:
        if item.get("resourceFieldRef"):
            raise ConfigError(
                f"downwardAPI item {item.get('path')!r}: resourceFieldRef is not supported here"
            )
        value = field_value(pod, (item.get("fieldRef") or {}).get("fieldPath", ""))
        files.append(VolumeFile(item.get("path", ""), value.encode(), int(item.get("mode", default_mode))))
    return files


def render_volume(pod: Obj, volume: Obj, objects: Objects, tokens: Mapping[tuple[str, str], str]) -> Volume:
    """What pod volume `volume` holds. MissingObject when a source is not there (yet); ConfigError for a
    kind of volume the host node does not provide."""
    name = str(volume.get("name"))
    where = f"volume {name!r}"
    if "emptyDir" in volume:
        return Volume(name, "emptyDir")
    if volume.get("hostPath"):
        host = volume["hostPath"]
        return Volume(
            name, "hostPath", host_path=str(host.get("path")), host_path_type=str(host.get("type") or "")
        )
    if volume.get("configMap") or volume.get("secret"):
        kind, source = (
            (CONFIG_MAP, volume["configMap"]) if volume.get("configMap") else (SECRET, volume["secret"])
        )
        obj_name = source.get("name") if kind == CONFIG_MAP else source.get("secretName")
        mode = int(source.get("defaultMode", DEFAULT_MODE))
        return Volume(name, "files", tuple(_key_files(kind, str(obj_name), source, objects, mode, where)))
    if volume.get("downwardAPI"):
        source = volume["downwardAPI"]
        mode = int(source.get("defaultMode", DEFAULT_MODE))
        return Volume(name, "files", tuple(_downward_files(pod, source.get("items") or (), mode)))
    if volume.get("projected") is not None:
        mode = int(volume["projected"].get("defaultMode", DEFAULT_MODE))
        files: list[VolumeFile] = []
        for source in _projections(volume):
            if source.get("configMap"):
                cm = source["configMap"]
                files += _key_files(CONFIG_MAP, str(cm.get("name")), cm, objects, mode, where)
            elif source.get("secret"):
                sec = source["secret"]
                files += _key_files(SECRET, str(sec.get("name")), sec, objects, mode, where)
            elif source.get("downwardAPI"):
                files += _downward_files(pod, source["downwardAPI"].get("items") or (), mode)
            elif source.get("serviceAccountToken"):
                path = str(source["serviceAccountToken"].get("path") or "token")
                if (name, path) not in tokens:
                    raise MissingObject(f"{where}: no ServiceAccount token for {path!r}")
                files.append(VolumeFile(path, tokens[(name, path)].encode(), mode))
            else:
                raise ConfigError(f"{where}: projected source {sorted(source)} is not supported here")
        return Volume(name, "files", tuple(files))
    kinds = sorted(k for k in volume if k != "name")
    raise ConfigError(f"{where}: volume type {', '.join(kinds)} is not supported by the host node")


def volume_mode(mode: int, fs_group: int | None, directory: bool) -> int:
    """A volume file's or directory's mode once fsGroup ownership is applied (kubelet SetVolumeOwnership for
    read-only volumes: group read, directories group-searchable and setgid)."""
    if fs_group is None:
        return mode
    if directory:
        return mode | 0o2550
    return mode | 0o440


def fs_group(pod: Obj) -> int | None:
    value = (spec(pod).get("securityContext") or {}).get("fsGroup")
    return None if value is None else int(value)


# --- containers --------------------------------------------------------------------------------------------
def all_containers(pod: Obj) -> list[Obj]:
    return [*(spec(pod).get("initContainers") or ()), *(spec(pod).get("containers") or ())]


def env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(pod_namespace: str, services: Iterable[Obj], enable_links: bool = True) -> dict[str, str]:
    """The Docker-link style variables a kubelet sets for Services: those of the pod's namespace (with
    enableServiceLinks) and always the `kubernetes` Service of `default` (KUBERNETES_SERVICE_HOST, ...)."""
    chosen: dict[str, Obj] = {}
    for service in services:
        m, s = meta(service), spec(service)
        if not s.get("clusterIP") or s.get("clusterIP") == "None":
            continue
        if enable_links and m.get("namespace") == pod_namespace:
            chosen[str(m.get("name"))] = service
        elif m.get("namespace") == "default" and m.get("name") == "kubernetes":
            chosen.setdefault("kubernetes", service)
    env: dict[str, str] = {}
    for name in sorted(chosen):
        s = spec(chosen[name])
        ip, ports, prefix = s["clusterIP"], list(s.get("ports") or ()), env_name(name)
        if not ports:
            continue
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{env_name(port['name'])}"] = str(port["port"])
        for i, port in enumerate(ports):
            protocol = str(port.get("protocol") or "TCP")
            url = f"{protocol.lower()}://{ip}:{port['port']}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            link = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
            env[link] = url
            env[f"{link}_PROTO"] = protocol.lower()
            env[f"{link}_PORT"] = str(port["port"])
            env[f"{link}_ADDR"] = ip
    return env


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` is a literal `$`, anything else
    (an undefined variable included) is left as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _key_ref(ref: Obj, kind: str, objects: Objects, var: str) -> str | None:
    obj = objects.get((kind, str(ref.get("name"))))
    key = str(ref.get("key"))
    data = _object_data(obj, kind) if obj is not None else {}
    if key in data:
        return data[key].decode(errors="replace")
    if ref.get("optional"):
        return None
    what = f"{kind.lower()} {ref.get('name')!r}"
    raise ConfigError(
        f"env {var}: {what} not found" if obj is None else f"env {var}: key {key!r} not in {what}"
    )


def container_env(
    pod: Obj,
    container: Obj,
    image_env: Mapping[str, str],
    services: Mapping[str, str],
    objects: Objects,
    pod_ip: str,
    host_ip: str,
    hostname: str,
) -> dict[str, str]:
    """The container's process environment: the image's, HOSTNAME, the Service variables, envFrom, then env
    (later entries win; values expand `$(VAR)` over what came before)."""
    env = {**image_env, "HOSTNAME": hostname, **services}
    for source in container.get("envFrom") or ():
        prefix = str(source.get("prefix") or "")
        ref = source.get("configMapRef") or source.get("secretRef") or {}
        kind = CONFIG_MAP if source.get("configMapRef") else SECRET
        obj = objects.get((kind, str(ref.get("name"))))
        if obj is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f"envFrom: {kind.lower()} {ref.get('name')!r} not found")
        for key, data in sorted(_object_data(obj, kind).items()):
            env[prefix + key] = data.decode(errors="replace")
    for var in container.get("env") or ():
        name = str(var["name"])
        value_from = var.get("valueFrom")
        if not value_from:
            env[name] = expand(str(var.get("value") or ""), env)
            continue
        if value_from.get("fieldRef"):
            env[name] = field_value(pod, value_from["fieldRef"].get("fieldPath", ""), pod_ip, host_ip)
        elif value_from.get("configMapKeyRef") or value_from.get("secretKeyRef"):
            kind = CONFIG_MAP if value_from.get("configMapKeyRef") else SECRET
            found = _key_ref(
                value_from.get("configMapKeyRef") or value_from["secretKeyRef"], kind, objects, name
            )
            if found is not None:
                env[name] = found
        else:
            raise ConfigError(f"env {name}: {sorted(value_from)} is not supported by the host node")
    return env


def command_line(container: Obj, image: ImageConfig, env: Mapping[str, str]) -> tuple[str, ...]:
    """What the container runs, as a runtime decides it: `command` replaces the image's entrypoint (and
    drops its default arguments), `args` replace the default arguments; `$(VAR)` expanded."""
    command = container.get("command")
    args = container.get("args")
    argv = [*command, *(args or ())] if command else [*image.entrypoint, *(args if args else image.cmd)]
    if not argv:
        raise ConfigError(f"container {container.get('name')!r}: no command, and the image has none")
    return tuple(expand(str(word), env) for word in argv)


# --- users -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def _table(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_identity(pod: Obj, container: Obj, image_user: str, passwd: str, group: str) -> Identity:
    """Who the container runs as: runAsUser/runAsGroup (container over pod) over the image's user, names
    looked up in the image's /etc/passwd and /etc/group; supplementary groups: the user's groups in the
    image, supplementalGroups and fsGroup. ConfigError for runAsNonRoot with root, or an unknown name."""
    pod_sc, sc = spec(pod).get("securityContext") or {}, container.get("securityContext") or {}
    users, groups = _table(passwd), _table(group)
    user_part, _, group_part = image_user.partition(":")
    entry: list[str] | None = None
    run_as = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if run_as is not None:
        uid = int(run_as)
        entry = next((u for u in users if len(u) > 3 and u[2] == str(uid)), None)
    elif not user_part or user_part.isdigit():
        uid = int(user_part or 0)
        entry = next((u for u in users if len(u) > 3 and u[2] == str(uid)), None)
    else:
        entry = next((u for u in users if len(u) > 3 and u[0] == user_part), None)
        if entry is None:
            raise ConfigError(f"unable to find user {user_part}: no matching entries in passwd file")
        uid = int(entry[2])
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if non_root and uid == 0:
        raise ConfigError("container has runAsNonRoot and image will run as root")
    run_as_group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    if run_as_group is not None:
        gid = int(run_as_group)
    elif group_part.isdigit():
        gid = int(group_part)
    elif group_part:
        found = next((g for g in groups if len(g) > 2 and g[0] == group_part), None)
        if found is None:
            raise ConfigError(f"unable to find group {group_part}: no matching entries in group file")
        gid = int(found[2])
    else:
        gid = int(entry[3]) if entry is not None else 0
    extra: list[int] = []
    if entry is not None:
        extra += [int(g[2]) for g in groups if len(g) > 3 and entry[0] in g[3].split(",")]
    extra += [int(g) for g in pod_sc.get("supplementalGroups") or ()]
    if pod_sc.get("fsGroup") is not None:
        extra.append(int(pod_sc["fsGroup"]))
    ordered = tuple(dict.fromkeys(g for g in extra))
    home = entry[5] if entry is not None and len(entry) > 5 and entry[5] else "/"
    return Identity(uid, gid, ordered, home)


# --- mounts ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MountPlan:
    volume: str
    sub_path: str
    target: str
    read_only: bool


def mount_plans(container: Obj, volumes: Mapping[str, Volume]) -> list[MountPlan]:
    """The container's volume mounts: file volumes are always read-only (as the kubelet mounts them); a
    subPath must stay inside its volume."""
    plans = []
    for mount in container.get("volumeMounts") or ():
        name = str(mount.get("name"))
        volume = volumes.get(name)
        if volume is None:
            raise ConfigError(f"volumeMount {name!r}: no such volume in the pod")
        sub_path = posixpath.normpath(str(mount.get("subPath") or ".")).lstrip("/")
        if sub_path == ".." or sub_path.startswith("../"):
            raise ConfigError(f"volumeMount {name!r}: subPath {mount.get('subPath')!r} leaves the volume")
        read_only = bool(mount.get("readOnly")) or volume.kind == "files"
        plans.append(MountPlan(name, "" if sub_path == "." else sub_path, str(mount["mountPath"]), read_only))
    return plans


def sandbox_spec(
    pod: Obj,
    container: Obj,
    image: ImageRootfs,
    *,
    volumes: Mapping[str, Volume],
    volume_dirs: Mapping[str, str],
    services: Mapping[str, str],
    objects: Objects,
    pod_ip: str,
    host_ip: str,
    passwd: str,
    group: str,
    layer: str,
    netns: str = "",
    managed_files: Mapping[str, str] | None = None,
    parent_pid: int = 0,
) -> Spec:
    """How the sandbox helper starts one run of `container` from `image`: command line, environment, user
    and groups, working directory, the volume mounts, and the files a kubelet manages (`managed_files`:
    container path -> host file, e.g. /etc/hosts; left out where the container mounts a volume itself).
    `passwd` and `group` are the image's /etc/passwd and /etc/group. ConfigError when it cannot start."""
    hostname = pod_hostname(pod)
    env = container_env(
        pod, container, image.config.environment, services, objects, pod_ip, host_ip, hostname
    )
    argv = command_line(container, image.config, env)
    identity = resolve_identity(pod, container, image.config.user, passwd, group)
    env.setdefault("HOME", identity.home)
    plans = mount_plans(container, volumes)
    mounts = [
        Mount(
            posixpath.join(volume_dirs[p.volume], p.sub_path) if p.sub_path else volume_dirs[p.volume],
            p.target,
            p.read_only,
        )
        for p in plans
    ]
    targets = {p.target for p in plans}
    mounts += [
        Mount(source, target) for target, source in (managed_files or {}).items() if target not in targets
    ]
    return Spec(
        rootfs=str(image.rootfs),
        layer=layer,
        argv=argv,
        env=env,
        uid=identity.uid,
        gid=identity.gid,
        groups=identity.groups,
        cwd=str(container.get("workingDir") or image.config.working_dir or "/"),
        hostname=hostname,
        netns=netns,
        mounts=tuple(mounts),
        parent_pid=parent_pid,
    )


def hosts_file(pod: Obj, pod_ip: str, hostname: str) -> str:
    """/etc/hosts as the kubelet writes it for a pod, hostAliases included."""
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
        f"{pod_ip}\t{hostname}",
    ]
    aliases = list(spec(pod).get("hostAliases") or ())
    if aliases:
        lines.append("# Entries added by HostAliases.")
    lines += [f"{a.get('ip')}\t" + "\t".join(a.get("hostnames") or ()) for a in aliases]
    return "\n".join(lines) + "\n"


def pod_hostname(pod: Obj) -> str:
    return str(spec(pod).get("hostname") or meta(pod).get("name") or "")


def termination_message(written: bytes, log_tail: bytes, policy: str, exit_code: int) -> str:
    """The terminated state's message: what the container wrote to its terminationMessagePath, else with
    FallbackToLogsOnError and a failure, the end of its log."""
    if written:
        return written[:MAX_TERMINATION_MESSAGE].decode(errors="replace")
    if policy == "FallbackToLogsOnError" and exit_code != 0:
        lines = log_tail.splitlines()[-FALLBACK_LOG_LINES:]
        return b"\n".join(lines)[-FALLBACK_LOG_BYTES:].decode(errors="replace")
    return ""


# --- probes ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """One probe, resolved against the container: what to check and how often."""

    action: str  # "http", "tcp" or "exec"
    host: str = ""
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    grace_seconds: int | None = None  # probe-level terminationGracePeriodSeconds (liveness, startup)


def _port(value: Any, container: Obj) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in container.get("ports") or ():
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ConfigError(f"probe port {value!r}: no container port of that name")


def resolve_probe(probe: Obj, container: Obj, pod_ip: str) -> Probe:
    """A probe of the container spec with its defaults and named ports resolved; ConfigError for gRPC
    probes (not implemented here) and unknown port names."""
    grace = probe.get("terminationGracePeriodSeconds")
    base = Probe(
        "",
        initial_delay=float(probe.get("initialDelaySeconds") or 0),
        period=float(probe.get("periodSeconds") or 10),
        timeout=float(probe.get("timeoutSeconds") or 1),
        success_threshold=int(probe.get("successThreshold") or 1),
        failure_threshold=int(probe.get("failureThreshold") or 3),
        grace_seconds=None if grace is None else int(grace),
    )
    if probe.get("httpGet"):
        get = probe["httpGet"]
        headers = tuple((str(h["name"]), str(h.get("value", ""))) for h in get.get("httpHeaders") or ())
        return dataclasses.replace(
            base,
            action="http",
            host=str(get.get("host") or pod_ip),
            port=_port(get.get("port"), container),
            path=str(get.get("path") or "/"),
            scheme=str(get.get("scheme") or "HTTP").upper(),
            headers=headers,
        )
    if probe.get("tcpSocket"):
        tcp = probe["tcpSocket"]
        host = str(tcp.get("host") or pod_ip)
        return dataclasses.replace(base, action="tcp", host=host, port=_port(tcp.get("port"), container))
    if probe.get("exec"):
        command = tuple(str(w) for w in probe["exec"].get("command") or ())
        return dataclasses.replace(base, action="exec", command=command)
    raise ConfigError(f"probe {sorted(probe)}: only httpGet, tcpSocket and exec probes are supported here")


@dataclass
class ProbeState:
    """A probe's result as the kubelet keeps it: it changes only after `success_threshold` successes or
    `failure_threshold` failures in a row. Readiness starts failed, liveness succeeded, startup unknown."""

    success_threshold: int
    failure_threshold: int
    result: bool | None
    successes: int = 0
    failures: int = 0

    def record(self, ok: bool) -> bool:
        """Count one probe outcome; True when the result changed."""
        before = self.result
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.success_threshold:
                self.result = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= self.failure_threshold:
                self.result = False
        return self.result != before


def http_probe_ok(status: int) -> bool:
    """A kubelet HTTP probe succeeds on 200-399."""
    return 200 <= status < 400


# --- restarts ----------------------------------------------------------------------------------------------
def should_restart(policy: str, exit_code: int, init: bool) -> bool:
    """Whether a container that exited with `exit_code` runs again under the pod's restartPolicy (an init
    container that succeeded never does; one that failed does unless the policy is Never)."""
    if init:
        return exit_code != 0 and policy != "Never"
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def restart_delay(streak: int) -> float:
    """Back-off before restart number `streak` of a run of crashes: the first at once, then 10 s, doubling
    up to 5 min (the kubelet's crash loop back-off)."""
    if streak <= 1:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0 ** (streak - 2))


def grace_seconds(pod: Obj, override: int | None = None) -> int:
    """The termination grace period: a probe's or the deletion's override, else the pod's (default 30 s)."""
    if override is not None:
        return max(0, int(override))
    value = spec(pod).get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE if value is None else max(0, int(value))


# --- status ------------------------------------------------------------------------------------------------
@dataclass
class ContainerRecord:
    """What the host node knows about one container: the runtime state a kubelet reports."""

    name: str
    image: str
    init: bool = False
    state: str = "waiting"  # waiting, running or terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""
    last_state: dict[str, Any] = field(default_factory=dict)

    def terminated_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at or None,
            "finishedAt": self.finished_at or None,
            "containerID": self.container_id or None,
        }
        if self.message:
            doc["message"] = self.message
        return {k: v for k, v in doc.items() if v is not None}

    def begin(self, now: str, id_prefix: str, started: bool) -> None:
        """A new run starts: a container that ran before counts a restart (and keeps how it last ended)."""
        if self.has_run:
            if self.state == "terminated":
                self.last_state = {"terminated": self.terminated_doc()}
            self.restart_count += 1
        self.state, self.reason, self.message = "running", "", ""
        self.started_at, self.finished_at, self.exit_code = now, "", 0
        self.container_id = f"{id_prefix}/{self.restart_count}"
        self.started, self.ready = started, False

    def end(self, exit_code: int, reason: str, message: str, now: str) -> None:
        self.state, self.exit_code, self.reason, self.message = "terminated", exit_code, reason, message
        self.finished_at, self.ready, self.started = now, False, False

    def wait(self, reason: str, message: str) -> None:
        """Waiting again (crash-loop back-off): the run that ended becomes the last state."""
        if self.state == "terminated":
            self.last_state = {"terminated": self.terminated_doc()}
        self.state, self.reason, self.message, self.ready = "waiting", reason, message, False

    @property
    def succeeded(self) -> bool:
        return self.state == "terminated" and self.exit_code == 0

    @property
    def has_run(self) -> bool:
        return self.state != "waiting" or bool(self.last_state)


def container_status(record: ContainerRecord) -> dict[str, Any]:
    if record.state == "running":
        state: dict[str, Any] = {"running": {"startedAt": record.started_at}}
    elif record.state == "terminated":
        state = {"terminated": record.terminated_doc()}
    else:
        waiting = {"reason": record.reason, **({"message": record.message} if record.message else {})}
        state = {"waiting": waiting}
    doc: dict[str, Any] = {
        "name": record.name,
        "image": record.image,
        "imageID": "",
        "ready": record.ready,
        "restartCount": record.restart_count,
        "started": record.started,
        "state": state,
        "lastState": dict(record.last_state),
    }
    if record.container_id:
        doc["containerID"] = record.container_id
    return doc


def pod_phase(
    policy: str, init: Sequence[ContainerRecord], regular: Sequence[ContainerRecord], terminal: bool
) -> str:
    """The kubelet's phase: Pending until the init containers succeeded and every container ran; Failed when
    an init container failed for good; then Running, or Succeeded/Failed once every container stopped for
    good (always, for a pod being deleted: `terminal`)."""
    for record in init:
        if record.state == "terminated" and record.exit_code != 0 and (policy == "Never" or terminal):
            return "Failed"
    if not all(r.succeeded for r in init):
        return "Failed" if terminal else "Pending"
    if not terminal and any(not r.has_run for r in regular):
        return "Pending"
    if any(r.state == "running" for r in regular):
        return "Running"
    stopped = [r for r in regular if r.state == "terminated" or r.last_state]
    succeeded = all(_exit_code(r) == 0 for r in stopped)
    if terminal:
        return "Succeeded" if succeeded else "Failed"
    if policy == "Always":
        return "Running"
    if policy == "OnFailure":
        return "Succeeded" if succeeded and all(r.state == "terminated" for r in regular) else "Running"
    return "Succeeded" if succeeded else "Failed"


def _exit_code(record: ContainerRecord) -> int:
    if record.state == "terminated":
        return record.exit_code
    return int((record.last_state.get("terminated") or {}).get("exitCode", 0))


def _condition(
    kind: str, ok: bool, previous: Mapping[str, Obj], now: str, reason: str = "", message: str = ""
) -> dict[str, Any]:
    """A pod condition. Reason and message are null when there is none: the status is written as a strategic
    merge patch (conditions merge by type), where null removes what an earlier write put there."""
    status = "True" if ok else "False"
    old = previous.get(kind) or {}
    return {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == status else now,
        "reason": (reason or None) if not ok else None,
        "message": (message or None) if not ok else None,
    }


def _gates(pod: Obj, previous: Mapping[str, Obj]) -> str:
    """Why the readiness gates hold the pod back ('' when they do not)."""
    for gate in spec(pod).get("readinessGates") or ():
        kind = gate.get("conditionType")
        condition = previous.get(kind)
        if condition is None:
            return f'corresponding condition of pod readiness gate "{kind}" does not exist.'
        if condition.get("status") != "True":
            return f'the status of pod readiness gate "{kind}" is not "True", but {condition.get("status")}'
    return ""


@dataclass(frozen=True)
class PodRuntime:
    """The pod-level facts of a status: addresses, start time, whether its sandbox is up, deletion."""

    host_ip: str
    pod_ip: str = ""
    start_time: str = ""
    sandbox_ready: bool = False
    terminal: bool = False


def pod_status(
    pod: Obj,
    runtime: PodRuntime,
    init: Sequence[ContainerRecord],
    regular: Sequence[ContainerRecord],
    now: str,
) -> dict[str, Any]:
    """The status a kubelet writes for the pod (conditions other than its own are left to their owners)."""
    previous = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or ()}
    policy = str(spec(pod).get("restartPolicy") or "Always")
    phase = pod_phase(policy, init, regular, runtime.terminal)
    done = phase in ("Succeeded", "Failed")
    pending_init = [r.name for r in init if not r.succeeded]
    unready = [r.name for r in regular if not r.ready]
    containers_ready = not unready and not done
    gates = _gates(pod, previous)
    if done:
        reason, message = "PodCompleted", ""
    else:
        reason, message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    ready_why = ("ReadinessGatesNotReady", gates) if containers_ready and gates else (reason, message)
    conditions = [
        _condition("PodReadyToStartContainers", runtime.sandbox_ready and not done, previous, now),
        _condition(
            "Initialized",
            not pending_init,
            previous,
            now,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(pending_init)}]",
        ),
        _condition("Ready", containers_ready and not gates, previous, now, *ready_why),
        _condition("ContainersReady", containers_ready, previous, now, reason, message),
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": runtime.host_ip,
        "hostIPs": [{"ip": runtime.host_ip}],
        "initContainerStatuses": [container_status(r) for r in init],
        "containerStatuses": [container_status(r) for r in regular],
    }
    if runtime.start_time:
        status["startTime"] = runtime.start_time
    if runtime.pod_ip:
        status["podIP"] = runtime.pod_ip
        status["podIPs"] = [{"ip": runtime.pod_ip}]
    return status
