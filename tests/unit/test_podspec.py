"""The host node's kubelet rules without a cluster (localcluster/podspec.py): pod spec -> environment,
volume files, users, mounts, probes, restarts, and the status documents it writes."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from localcluster import podspec
from localcluster.images import DEFAULT_PATH, ImageConfig, ImageRootfs
from localcluster.podspec import (
    CONFIG_MAP,
    SECRET,
    ConfigError,
    ContainerRecord,
    MissingObject,
    PodRuntime,
    ProbeState,
)

NOW = "2026-12-07T10:00:00Z"
LATER = "2026-12-07T10:05:00Z"


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-0",
            "namespace": "ns1",
            "uid": "u-1",
            "labels": {"app": "web", "tier": 'front"end'},
            "annotations": {"note": "x"},
        },
        "spec": {
            "nodeName": "grove-host",
            "serviceAccountName": "sa1",
            "containers": [{"name": "c"}],
            **spec,
        },
    }


def secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": dict(data)}


# --- fields and objects ---------------------------------------------------------------------------------------
def test_field_values_as_the_kubelet_renders_them() -> None:
    p = pod()
    assert podspec.field_value(p, "metadata.name") == "web-0"
    assert podspec.field_value(p, "metadata.namespace") == "ns1"
    assert podspec.field_value(p, "spec.serviceAccountName") == "sa1"
    assert podspec.field_value(p, "status.podIP", pod_ip="10.1.1.2") == "10.1.1.2"
    assert podspec.field_value(p, "metadata.labels['app']") == "web"
    assert podspec.field_value(p, "metadata.labels") == 'app="web"\ntier="front\\"end"\n'
    with pytest.raises(ConfigError):
        podspec.field_value(p, "spec.nodeSelector")


def test_referenced_objects_from_volumes_and_env() -> None:
    p = pod(
        volumes=[
            {"name": "a", "configMap": {"name": "cm1"}},
            {"name": "b", "secret": {"secretName": "s1"}},
            {
                "name": "c",
                "projected": {"sources": [{"configMap": {"name": "cm2"}}, {"secret": {"name": "s2"}}]},
            },
        ],
        containers=[
            {
                "name": "c",
                "envFrom": [{"secretRef": {"name": "s3"}}],
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm3", "key": "k"}}}],
            }
        ],
    )
    assert podspec.referenced_objects(p) == {
        (CONFIG_MAP, "cm1"),
        (SECRET, "s1"),
        (CONFIG_MAP, "cm2"),
        (SECRET, "s2"),
        (SECRET, "s3"),
        (CONFIG_MAP, "cm3"),
    }


def test_token_requests_are_bound_to_the_pod() -> None:
    p = pod(
        volumes=[
            {
                "name": "kube-api-access",
                "projected": {
                    "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]
                },
            }
        ]
    )
    (request,) = podspec.token_requests(p)
    assert request == podspec.TokenRequest("kube-api-access", "token", "", 3600)
    body = podspec.token_request_body(p, request)
    assert body["spec"]["expirationSeconds"] == 3600
    assert body["spec"]["audiences"] == []
    assert body["spec"]["boundObjectRef"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web-0",
        "uid": "u-1",
    }
    assert podspec.token_refresh_after(3600) == pytest.approx(2880)


# --- volumes ---------------------------------------------------------------------------------------------------
def test_projected_volume_files_like_kube_api_access() -> None:
    volume = {
        "name": "api",
        "projected": {
            "defaultMode": 0o444,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                    }
                },
            ],
        },
    }
    objects = {(CONFIG_MAP, "kube-root-ca.crt"): config_map("kube-root-ca.crt", **{"ca.crt": "PEM"})}
    rendered = podspec.render_volume(pod(), volume, objects, {("api", "token"): "jwt"})
    assert rendered.kind == "files"
    assert {(f.path, f.data, f.mode) for f in rendered.files} == {
        ("token", b"jwt", 0o444),
        ("ca.crt", b"PEM", 0o444),
        ("namespace", b"ns1", 0o444),
    }
    with pytest.raises(MissingObject):
        podspec.render_volume(pod(), volume, {}, {("api", "token"): "jwt"})  # kube-root-ca.crt not there yet
    with pytest.raises(MissingObject):
        podspec.render_volume(pod(), volume, objects, {})  # no token


def test_secret_volume_items_modes_and_optional() -> None:
    objects = {(SECRET, "s"): secret("s", a="1", b="2")}
    whole = podspec.render_volume(pod(), {"name": "v", "secret": {"secretName": "s"}}, objects, {})
    assert [(f.path, f.data, f.mode) for f in whole.files] == [("a", b"1", 0o644), ("b", b"2", 0o644)]
    items = {
        "secretName": "s",
        "defaultMode": 0o400,
        "items": [{"key": "b", "path": "dir/b.txt", "mode": 0o600}],
    }
    picked = podspec.render_volume(pod(), {"name": "v", "secret": items}, objects, {})
    assert [(f.path, f.data, f.mode) for f in picked.files] == [("dir/b.txt", b"2", 0o600)]
    missing = {"name": "v", "secret": {"secretName": "gone"}}
    with pytest.raises(MissingObject, match="gone"):
        podspec.render_volume(pod(), missing, objects, {})
    optional = {"name": "v", "secret": {"secretName": "gone", "optional": True}}
    assert podspec.render_volume(pod(), optional, objects, {}).files == ()
    with pytest.raises(MissingObject, match="key 'c'"):
        podspec.render_volume(
            pod(),
            {"name": "v", "secret": {"secretName": "s", "items": [{"key": "c", "path": "c"}]}},
            objects,
            {},
        )


def test_config_map_binary_data_and_downward_api_and_empty_dir() -> None:
    cm = {
        "metadata": {"name": "cm"},
        "data": {"t": "text"},
        "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()},
    }
    files = podspec.render_volume(
        pod(), {"name": "v", "configMap": {"name": "cm"}}, {(CONFIG_MAP, "cm"): cm}, {}
    ).files
    assert {f.path: f.data for f in files} == {"t": b"text", "bin": b"\x00\x01"}
    downward = {
        "name": "d",
        "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
    }
    (labels,) = podspec.render_volume(pod(), downward, {}, {}).files
    assert labels.data.startswith(b'app="web"\n')
    assert podspec.render_volume(pod(), {"name": "e", "emptyDir": {}}, {}, {}).kind == "emptyDir"
    with pytest.raises(ConfigError, match="persistentVolumeClaim"):
        podspec.render_volume(pod(), {"name": "p", "persistentVolumeClaim": {"claimName": "x"}}, {}, {})


def test_fs_group_modes() -> None:
    assert podspec.volume_mode(0o600, None, False) == 0o600
    assert podspec.volume_mode(0o600, 2000, False) == 0o640
    assert podspec.volume_mode(0o755, 2000, True) & 0o2000


# --- environment, command, user ----------------------------------------------------------------------------
def test_service_env_kubernetes_always_others_with_links() -> None:
    services = [
        {
            "metadata": {"namespace": "default", "name": "kubernetes"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]},
        },
        {
            "metadata": {"namespace": "ns1", "name": "my-svc"},
            "spec": {"clusterIP": "10.96.3.4", "ports": [{"name": "http", "port": 80}]},
        },
        {
            "metadata": {"namespace": "ns1", "name": "headless"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
        },
        {
            "metadata": {"namespace": "other", "name": "far"},
            "spec": {"clusterIP": "10.96.9.9", "ports": [{"port": 80}]},
        },
    ]
    env = podspec.service_env("ns1", services)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.96.0.1:443"
    assert env["MY_SVC_SERVICE_HOST"] == "10.96.3.4"
    assert env["MY_SVC_PORT"] == "tcp://10.96.3.4:80"
    assert not any(k.startswith(("HEADLESS_", "FAR_")) for k in env)
    without_links = podspec.service_env("ns1", services, enable_links=False)
    assert (
        "MY_SVC_SERVICE_HOST" not in without_links and without_links["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    )


def test_expand() -> None:
    env = {"A": "1", "B": "two"}
    assert podspec.expand("$(A)-$(B)", env) == "1-two"
    assert podspec.expand("$(MISSING)", env) == "$(MISSING)"
    assert podspec.expand("$$(A)", env) == "$(A)"
    assert podspec.expand("cost $5 $(A", env) == "cost $5 $(A"


def test_container_env_order_and_sources() -> None:
    p = pod()
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "GREETING", "value": "hi $(NAME) at $(IP)"},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope", "optional": True}}},
            {"name": "PATH", "value": "/custom"},
        ],
    }
    objects = {(CONFIG_MAP, "cm"): config_map("cm", x="1"), (SECRET, "s"): secret("s", pw="hunter2")}
    services = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    env = podspec.container_env(
        p, container, {"PATH": "/img", "LANG": "C"}, services, objects, "10.1.0.5", "10.1.0.1", "web-0"
    )
    assert env["GREETING"] == "hi web-0 at 10.1.0.5"
    assert env["CM_x"] == "1" and env["PASS"] == "hunter2" and "OPT" not in env
    assert env["PATH"] == "/custom" and env["LANG"] == "C" and env["HOSTNAME"] == "web-0"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    missing = {
        "name": "c",
        "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}}],
    }
    with pytest.raises(ConfigError, match="nope"):
        podspec.container_env(p, missing, {}, {}, objects, "", "", "web-0")


def test_command_line_follows_runtime_rules() -> None:
    image = ImageConfig(entrypoint=("/entry",), cmd=("--default",))
    assert podspec.command_line({"name": "c"}, image, {}) == ("/entry", "--default")
    assert podspec.command_line({"name": "c", "args": ["--x"]}, image, {}) == ("/entry", "--x")
    assert podspec.command_line({"name": "c", "command": ["run"]}, image, {}) == ("run",)
    assert podspec.command_line({"name": "c", "command": ["run"], "args": ["$(A)"]}, image, {"A": "1"}) == (
        "run",
        "1",
    )
    with pytest.raises(ConfigError, match="no command"):
        podspec.command_line({"name": "c"}, ImageConfig(), {})


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1001:\nextra:x:2001:app\n"


def ids(identity: podspec.Identity) -> tuple[int, int, tuple[int, ...]]:
    return identity.uid, identity.gid, identity.groups


def test_identity_precedence_and_groups() -> None:
    plain = {"name": "c"}
    assert podspec.resolve_identity(pod(), plain, "", PASSWD, GROUP) == podspec.Identity(0, 0, (), "/root")
    by_name = podspec.resolve_identity(pod(), plain, "app", PASSWD, GROUP)
    assert (by_name.uid, by_name.gid, by_name.groups, by_name.home) == (1000, 1001, (2001,), "/home/app")
    assert ids(podspec.resolve_identity(pod(), plain, "65532:65532", PASSWD, GROUP)) == (65532, 65532, ())
    p = pod(securityContext={"runAsUser": 7, "runAsGroup": 8, "fsGroup": 9, "supplementalGroups": [10]})
    assert ids(podspec.resolve_identity(p, plain, "app", PASSWD, GROUP)) == (
        7,
        8,
        (10, 9),
    )  # uid 7 is not in passwd: no image groups
    container = {"name": "c", "securityContext": {"runAsUser": 11}}
    assert podspec.resolve_identity(p, container, "", PASSWD, GROUP).uid == 11
    non_root = pod(securityContext={"runAsNonRoot": True})
    with pytest.raises(ConfigError, match="runAsNonRoot"):
        podspec.resolve_identity(non_root, plain, "", PASSWD, GROUP)
    assert podspec.resolve_identity(non_root, plain, "65532", PASSWD, GROUP).uid == 65532
    with pytest.raises(ConfigError, match="nobody"):
        podspec.resolve_identity(pod(), plain, "nobody", PASSWD, GROUP)


def test_mounts_and_sandbox_spec(tmp_path: Path) -> None:
    volumes = {
        "cfg": podspec.Volume("cfg", "files"),
        "scratch": podspec.Volume("scratch", "emptyDir"),
    }
    container = {
        "name": "c",
        "command": ["serve"],
        "workingDir": "/srv",
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/app"},
            {"name": "scratch", "mountPath": "/data", "subPath": "sub/dir"},
            {"name": "scratch", "mountPath": "/etc/hosts", "subPath": "hosts"},
        ],
    }
    plans = podspec.mount_plans(container, volumes)
    assert [(m.volume, m.sub_path, m.target, m.read_only) for m in plans] == [
        ("cfg", "", "/etc/app", True),  # file volumes are always read-only
        ("scratch", "sub/dir", "/data", False),
        ("scratch", "hosts", "/etc/hosts", False),
    ]
    with pytest.raises(ConfigError, match="leaves"):
        podspec.mount_plans(
            {"volumeMounts": [{"name": "scratch", "mountPath": "/x", "subPath": "../up"}]}, volumes
        )
    with pytest.raises(ConfigError, match="no such volume"):
        podspec.mount_plans({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, volumes)
    image = ImageRootfs("img", tmp_path, ImageConfig(user="1000", env=(("LANG", "C"),)))
    spec = podspec.sandbox_spec(
        pod(),
        container,
        image,
        volumes=volumes,
        volume_dirs={"cfg": "/v/cfg", "scratch": "/v/scratch"},
        services={},
        objects={},
        pod_ip="10.1.0.5",
        host_ip="10.1.0.1",
        passwd=PASSWD,
        group=GROUP,
        layer="/layer",
        netns="/run/netns/x",
        managed_files={"/etc/hosts": "/pod/hosts", "/etc/hostname": "/pod/hostname"},
        parent_pid=42,
    )
    assert spec.argv == ("serve",) and spec.cwd == "/srv" and spec.uid == 1000 and spec.gid == 1001
    assert spec.env["PATH"] == DEFAULT_PATH and spec.env["HOME"] == "/home/app" and spec.hostname == "web-0"
    targets = {m.target: (m.source, m.read_only) for m in spec.mounts}
    assert targets["/data"] == ("/v/scratch/sub/dir", False)
    assert targets["/etc/hosts"] == ("/v/scratch/hosts", False)  # the container's own mount wins
    assert targets["/etc/hostname"] == ("/pod/hostname", False)
    assert spec.rootfs == str(tmp_path) and spec.netns == "/run/netns/x" and spec.parent_pid == 42


def test_hosts_file_and_termination_message() -> None:
    p = pod(hostAliases=[{"ip": "1.2.3.4", "hostnames": ["a", "b"]}])
    text = podspec.hosts_file(p, "10.1.0.5", "web-0")
    assert "10.1.0.5\tweb-0\n" in text and text.endswith("1.2.3.4\ta\tb\n")
    assert podspec.termination_message(b"bye", b"log", "File", 1) == "bye"
    assert podspec.termination_message(b"", b"l1\nl2", "File", 1) == ""
    assert podspec.termination_message(b"", b"l1\nl2", "FallbackToLogsOnError", 1) == "l1\nl2"
    assert podspec.termination_message(b"", b"l1\nl2", "FallbackToLogsOnError", 0) == ""


# --- probes and restarts ------------------------------------------------------------------------------------
def test_resolve_probe_defaults_and_named_ports() -> None:
    container = {"name": "c", "ports": [{"name": "health", "containerPort": 8081}]}
    probe = podspec.resolve_probe({"httpGet": {"path": "/readyz", "port": "health"}}, container, "10.1.0.5")
    assert (probe.action, probe.host, probe.port, probe.path, probe.scheme) == (
        "http",
        "10.1.0.5",
        8081,
        "/readyz",
        "HTTP",
    )
    assert (probe.period, probe.timeout, probe.success_threshold, probe.failure_threshold) == (
        10.0,
        1.0,
        1,
        3,
    )
    tcp = podspec.resolve_probe(
        {"tcpSocket": {"port": 80}, "periodSeconds": 2, "initialDelaySeconds": 5}, container, "ip"
    )
    assert (tcp.action, tcp.port, tcp.period, tcp.initial_delay) == ("tcp", 80, 2.0, 5.0)
    assert podspec.resolve_probe({"exec": {"command": ["true"]}}, container, "ip").command == ("true",)
    with pytest.raises(ConfigError, match="no container port"):
        podspec.resolve_probe({"httpGet": {"port": "metrics"}}, container, "ip")
    with pytest.raises(ConfigError, match="grpc"):
        podspec.resolve_probe({"grpc": {"port": 9}}, container, "ip")


def test_probe_thresholds() -> None:
    readiness = ProbeState(success_threshold=2, failure_threshold=3, result=False)
    assert not readiness.record(True) and readiness.result is False  # one success is not enough
    assert readiness.record(True) and readiness.result is True
    assert not readiness.record(False) and not readiness.record(False)
    assert readiness.record(False) and readiness.result is False
    liveness = ProbeState(1, 2, result=True)
    assert not liveness.record(False)
    assert not liveness.record(True)  # a success resets the count
    assert not liveness.record(False) and liveness.record(False) and liveness.result is False
    assert podspec.http_probe_ok(200) and podspec.http_probe_ok(302) and not podspec.http_probe_ok(404)


def test_restart_rules_and_back_off() -> None:
    assert podspec.should_restart("Always", 0, init=False)
    assert not podspec.should_restart("OnFailure", 0, init=False) and podspec.should_restart(
        "OnFailure", 1, init=False
    )
    assert not podspec.should_restart("Never", 1, init=False)
    assert not podspec.should_restart("Always", 0, init=True) and podspec.should_restart(
        "Always", 2, init=True
    )
    assert not podspec.should_restart("Never", 2, init=True)
    assert [podspec.restart_delay(n) for n in (1, 2, 3, 4, 7, 20)] == [0.0, 10.0, 20.0, 40.0, 300.0, 300.0]
    assert podspec.grace_seconds(pod()) == 30
    assert podspec.grace_seconds(pod(terminationGracePeriodSeconds=3)) == 3
    assert podspec.grace_seconds(pod(terminationGracePeriodSeconds=3), 0) == 0


# --- status ------------------------------------------------------------------------------------------------
def test_container_record_transitions() -> None:
    record = ContainerRecord("c", "img")
    assert not record.has_run
    record.begin(NOW, "hostnode://u/c", started=True)
    assert (record.state, record.restart_count, record.container_id) == ("running", 0, "hostnode://u/c/0")
    record.end(1, "Error", "boom", LATER)
    assert record.state == "terminated" and record.has_run
    record.wait("CrashLoopBackOff", "back-off 10s")
    assert (
        record.last_state["terminated"]["exitCode"] == 1
        and record.last_state["terminated"]["message"] == "boom"
    )
    record.begin(LATER, "hostnode://u/c", started=True)
    assert record.restart_count == 1 and record.container_id == "hostnode://u/c/1" and record.reason == ""
    doc = podspec.container_status(record)
    assert doc["state"] == {"running": {"startedAt": LATER}}
    assert doc["lastState"]["terminated"]["reason"] == "Error"


def _running(name: str, ready: bool = True) -> ContainerRecord:
    record = ContainerRecord(name, "img")
    record.begin(NOW, "id", started=True)
    record.ready = ready
    return record


def _done(name: str, code: int, init: bool = False) -> ContainerRecord:
    record = ContainerRecord(name, "img", init=init)
    record.begin(NOW, "id", started=True)
    record.end(code, "Completed" if code == 0 else "Error", "", LATER)
    return record


def test_pod_phase() -> None:
    waiting = ContainerRecord("c", "img")
    assert (
        podspec.pod_phase("Always", [ContainerRecord("i", "img", init=True)], [waiting], False) == "Pending"
    )
    assert podspec.pod_phase("Always", [_done("i", 0, init=True)], [waiting], False) == "Pending"
    assert podspec.pod_phase("Always", [_done("i", 0, init=True)], [_running("c")], False) == "Running"
    assert podspec.pod_phase("Never", [_done("i", 1, init=True)], [waiting], False) == "Failed"
    assert podspec.pod_phase("Always", [_done("i", 1, init=True)], [waiting], False) == "Pending"
    assert podspec.pod_phase("Never", [], [_done("c", 0)], False) == "Succeeded"
    assert podspec.pod_phase("Never", [], [_done("c", 2)], False) == "Failed"
    assert podspec.pod_phase("OnFailure", [], [_done("c", 2)], False) == "Running"  # about to restart
    assert podspec.pod_phase("Always", [], [_done("c", 0)], False) == "Running"
    backing_off = _done("c", 1)
    backing_off.wait("CrashLoopBackOff", "")
    assert podspec.pod_phase("Always", [], [backing_off], False) == "Running"
    # deleted pods end in a terminal phase once their containers stopped (137: killed)
    assert podspec.pod_phase("Always", [], [_done("c", 137)], True) == "Failed"
    assert podspec.pod_phase("Always", [], [_done("c", 0)], True) == "Succeeded"


def test_pod_status_document() -> None:
    p = pod(readinessGates=[{"conditionType": "example.com/gate"}])
    p["status"] = {"conditions": [{"type": "PodScheduled", "status": "True"}]}
    runtime = PodRuntime(host_ip="10.1.0.1", pod_ip="10.1.0.5", start_time=NOW, sandbox_ready=True)
    init = [_done("setup", 0, init=True)]
    status = podspec.pod_status(p, runtime, init, [_running("a"), _running("b", ready=False)], NOW)
    assert status["phase"] == "Running"
    assert status["hostIP"] == "10.1.0.1" and status["podIPs"] == [{"ip": "10.1.0.5"}]
    assert status["startTime"] == NOW
    conditions = {c["type"]: c for c in status["conditions"]}
    assert "PodScheduled" not in conditions  # the scheduler's, left alone
    assert conditions["Initialized"]["status"] == "True" and conditions["Initialized"]["reason"] is None
    assert conditions["ContainersReady"]["status"] == "False"
    assert conditions["ContainersReady"]["message"] == "containers with unready status: [b]"
    assert conditions["Ready"]["reason"] == "ContainersNotReady"
    assert [s["name"] for s in status["initContainerStatuses"]] == ["setup"]
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    both = podspec.pod_status(p, runtime, init, [_running("a"), _running("b")], LATER)
    ready = {c["type"]: c for c in both["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"
    p["status"]["conditions"].append({"type": "example.com/gate", "status": "True"})
    p["status"]["conditions"].append({"type": "Ready", "status": "True", "lastTransitionTime": NOW})
    gated = {
        c["type"]: c
        for c in podspec.pod_status(p, runtime, init, [_running("a"), _running("b")], LATER)["conditions"]
    }
    assert (
        gated["Ready"]["status"] == "True" and gated["Ready"]["lastTransitionTime"] == NOW
    )  # unchanged: kept
    assert gated["ContainersReady"]["lastTransitionTime"] == LATER


def test_pod_status_while_initializing() -> None:
    init = [ContainerRecord("grove-initc", "img", init=True)]
    init[0].begin(NOW, "id", started=True)
    regular = [ContainerRecord("c", "img", reason="PodInitializing")]
    status = podspec.pod_status(pod(), PodRuntime("10.1.0.1", "10.1.0.5", NOW, True), init, regular, NOW)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Pending"
    assert conditions["Initialized"]["message"] == "containers with incomplete status: [grove-initc]"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
