"""Pure parts of localcluster: manifests, go.mod generation, ports, binary lookup, PKI, state, processes."""

from __future__ import annotations

import os
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from localcluster import (
    binaries,
    credentials,
    initrunner,
    nodes,
    operator,
    ports,
    processes,
    securefile,
    versions,
)
from localcluster.cli import build_parser
from localcluster.state import ClusterInfo, Component, load, save

SAMPLE_GOMOD = """\
// This is a generated file. Do not edit directly.
module k8s.io/kubernetes

go 1.26.0

require (
\tgithub.com/JeffAshton/win_pdh v0.0.0-20161109143554-76bb4ee9f0ab
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0 // indirect
\tk8s.io/kube-openapi v0.0.0-20260317180543-43fb72c5454a
)

require k8s.io/apimachinery v0.0.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
)
"""


# --- nodes -------------------------------------------------------------------------------------------


def test_node_manifest_defaults() -> None:
    node = nodes.node_manifest(0)
    meta = node["metadata"]
    assert meta["name"] == "fake-node-000"
    assert meta["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert meta["labels"] == {
        "kubernetes.io/hostname": "fake-node-000",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        "topology.kubernetes.io/zone": "zone-0",
        "topology.grove.io/block": "block-0",
        "topology.grove.io/rack": "rack-0",
    }
    assert node["spec"]["taints"] == [{"key": "fake-node", "value": "true", "effect": "NoSchedule"}]
    expected = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"}
    assert node["status"]["capacity"] == expected
    assert node["status"]["allocatable"] == expected


@pytest.mark.parametrize(
    ("index", "zone", "block", "rack"),
    [(3, 0, 0, 0), (4, 0, 0, 1), (8, 0, 1, 2), (17, 1, 2, 4), (35, 2, 4, 8)],
)
def test_node_manifest_topology(index: int, zone: int, block: int, rack: int) -> None:
    labels = nodes.node_manifest(index)["metadata"]["labels"]
    assert labels["topology.kubernetes.io/zone"] == f"zone-{zone}"
    assert labels["topology.grove.io/block"] == f"block-{block}"
    assert labels["topology.grove.io/rack"] == f"rack-{rack}"


def test_node_manifest_custom_shape_and_prefix() -> None:
    node = nodes.node_manifest(12, nodes.NodeShape(cpu="8", memory="32Gi", pods=20, gpus=0), prefix="gpu-")
    assert node["metadata"]["name"] == "gpu-012"
    assert node["status"]["capacity"] == {"cpu": "8", "memory": "32Gi", "pods": "20"}


def test_node_manifest_is_fresh_each_call() -> None:
    first = nodes.node_manifest(1)
    first["status"]["capacity"]["cpu"] = "1"
    assert nodes.node_manifest(1)["status"]["capacity"]["cpu"] == "64"
    assert first["status"]["allocatable"]["cpu"] == "64"


def test_next_index() -> None:
    assert nodes.next_index([]) == 0
    assert nodes.next_index(["fake-node-000", "fake-node-007", "other-node-099", "fake-node-x"]) == 8
    assert nodes.next_index(["fake-node-1000"]) == 1001
    assert nodes.next_index(["gpu-004"], prefix="gpu-") == 5


def test_is_ready() -> None:
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}, "spec": {}}
    assert nodes.is_ready(ready)
    tainted = {**ready, "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}}
    assert not nodes.is_ready(tainted)
    assert not nodes.is_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not nodes.is_ready({})


# --- go modules --------------------------------------------------------------------------------------


def test_staging_modules_only_exact_v000() -> None:
    assert binaries.staging_modules(SAMPLE_GOMOD) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/apimachinery"]


def test_wrapper_gomod_replaces() -> None:
    text = binaries.wrapper_gomod(
        "example/wrap",
        "1.26",
        {"k8s.io/kubernetes": "v1.36.3"},
        "v0.36.3",
        ["k8s.io/api", "k8s.io/client-go"],
    )
    lines = text.splitlines()
    assert lines[0] == "module example/wrap"
    assert "go 1.26" in lines
    assert "require k8s.io/kubernetes v1.36.3" in lines
    assert "replace k8s.io/api => k8s.io/api v0.36.3" in lines
    assert "replace k8s.io/client-go => k8s.io/client-go v0.36.3" in lines
    assert "replace" not in binaries.wrapper_gomod("m", "1.26", {"a/b": "v1.0.0"})


def test_tools_go_has_build_tag() -> None:
    text = binaries.tools_go(["k8s.io/kubernetes/cmd/kube-apiserver"])
    assert text.startswith("//go:build tools\n")
    assert '_ "k8s.io/kubernetes/cmd/kube-apiserver"' in text


def test_versions_consistent() -> None:
    assert versions.STAGING_VERSION == "v0.36.3"
    assert versions.bin_dir_name() == "bin-k8s-v1.36.3-etcd-v3.6.16-kwok-v0.7.0"
    flags = binaries.version_ldflags("2026-01-01T00:00:00Z")
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "-X k8s.io/component-base/version.gitMinor=36" in flags


# --- binary location ---------------------------------------------------------------------------------


def _fake_binary(folder: Path, name: str, executable: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def test_locate_prefers_kubebuilder_assets(tmp_path: Path) -> None:
    assets, cache = tmp_path / "assets", tmp_path / "cache"
    _fake_binary(assets, "etcd")
    _fake_binary(assets, "kube-apiserver")
    _fake_binary(assets, "kwok", executable=False)  # not executable: ignored
    for name in versions.ALL_BINARIES:
        if name != "kube-scheduler":
            _fake_binary(cache, name)
    found = binaries.locate(assets, cache)
    assert found["etcd"] == assets / "etcd"
    assert found["kube-apiserver"] == assets / "kube-apiserver"
    assert found["kwok"] == cache / "kwok"
    assert found["kube-controller-manager"] == cache / "kube-controller-manager"
    assert found["kube-scheduler"] is None
    assert binaries.locate(None, cache)["etcd"] == cache / "etcd"


def test_ensure_builds_nothing_when_all_present(tmp_path: Path) -> None:
    env = {"GROVE_CACHE_DIR": str(tmp_path / "cache"), "KUBEBUILDER_ASSETS": str(tmp_path / "assets")}
    _fake_binary(tmp_path / "assets", "etcd")
    for name in versions.ALL_BINARIES[1:]:
        _fake_binary(binaries.cache_bin_dir(env), name)
    messages: list[str] = []
    found = binaries.ensure(messages.append, env).as_dict()
    assert messages == []
    assert found["etcd"] == tmp_path / "assets" / "etcd"
    assert found["kwok"] == binaries.cache_bin_dir(env) / "kwok"


def test_cache_root_precedence(tmp_path: Path) -> None:
    assert binaries.cache_root({"GROVE_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert binaries.cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "grove-py"
    assert binaries.cache_root({}) == Path.home() / ".cache" / "grove-py"
    assert binaries.cache_bin_dir({"GROVE_CACHE_DIR": str(tmp_path)}).parent == tmp_path


# --- ports -------------------------------------------------------------------------------------------


def test_free_ports_distinct_and_bindable() -> None:
    chosen = ports.free_ports(6)
    assert len(set(chosen)) == 6
    assert all(ports.is_free(p) for p in chosen)


def test_free_ports_are_never_ones_a_client_could_be_given_as_its_source_port() -> None:
    low, _ = ports.ephemeral_range()
    assert low > ports.SERVER_PORTS_FROM + 600  # this machine leaves room below the range
    assert all(ports.SERVER_PORTS_FROM <= p < low for p in ports.free_ports(6))


def test_free_ports_skips_ports_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind((ports.HOST, ports.free_ports(1)[0]))
        taken = holder.getsockname()[1]
        # the taken port is the first candidate tried
        monkeypatch.setattr(ports.random, "sample", lambda pool, k: [p for p in pool if p != taken] + [taken])
        chosen = ports.free_ports(3)
    assert taken not in chosen and len(set(chosen)) == 3


def test_require_free_names_port_and_holder() -> None:
    with socket.socket() as holder:
        holder.bind((ports.HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not ports.is_free(port)
        assert ports.port_holder(port) == f"pid {os.getpid()} ({Path('/proc/self/comm').read_text().strip()})"
        with pytest.raises(
            ports.PortInUseError, match=rf"127\.0\.0\.1:{port} requested for etcd.*pid {os.getpid()}"
        ):
            ports.require_free(port, "etcd")
    assert ports.require_free(port, "etcd") == port


# --- credentials -------------------------------------------------------------------------------------


def test_credentials_and_kubeconfig(tmp_path: Path) -> None:
    creds = credentials.generate(tmp_path / "pki")
    admin = x509.load_pem_x509_certificate(creds.admin_cert.read_bytes())
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    serving = x509.load_pem_x509_certificate(creds.apiserver_cert.read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc.cluster.local" in sans.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.96.0.1"}
    assert b"PRIVATE KEY" in creds.sa_key.read_bytes() and b"PUBLIC KEY" in creds.sa_pub.read_bytes()
    assert stat.S_IMODE(creds.admin_key.stat().st_mode) == 0o600

    path = credentials.write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", creds)
    config = yaml.safe_load(path.read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert config["current-context"] == credentials.CONTEXT
    assert config["users"][0]["user"]["client-key-data"]


# --- keys and tokens: private from the first byte ----------------------------------------------------


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """The most permissive umask: a file created with the default mode would be world-readable."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def spy_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bytes]]:
    """Every os.write, with the mode its file had at that moment."""
    seen: list[tuple[int, bytes]] = []
    real = os.write

    def write(fd: int, data: Any) -> int:
        seen.append((stat.S_IMODE(os.fstat(fd).st_mode), bytes(data)))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)
    return seen


def test_write_atomic_is_private_before_the_data_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_zero: None
) -> None:
    writes = spy_writes(monkeypatch)
    target = tmp_path / "token"
    target.write_text("old")  # 0666 under this umask: replaced, not rewritten in place
    securefile.write_atomic(target, b"secret")
    assert target.read_bytes() == b"secret" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert writes == [(0o600, b"secret")]
    public = tmp_path / "ca.crt"
    securefile.write_atomic(public, b"cert", mode=0o644, owner=(os.getuid(), os.getgid()))
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert writes[-1] == (0o600, b"cert")  # widened only once written, through its descriptor
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "token"]  # no temporary file left


def test_write_atomic_leaves_the_target_alone_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "key"
    target.write_bytes(b"old")

    def fail(src: str, dst: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        securefile.write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["key"]


def test_the_local_clusters_keys_and_tokens_are_never_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_zero: None
) -> None:
    """Every key, token and kubeconfig the local cluster writes is created 0600, never made private
    afterwards (a chmod after the write is the window this forbids)."""
    writes = spy_writes(monkeypatch)

    def chmod(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"made private after it was written: {args[0]}")

    monkeypatch.setattr(os, "chmod", chmod)
    creds = credentials.generate(tmp_path / "pki")
    admin = credentials.write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", creds)
    info = ClusterInfo(
        state_dir=tmp_path,
        kubeconfig=admin,
        apiserver_url="https://127.0.0.1:6443",
        ca_file=creds.ca_cert,
        admin_cert_file=creds.admin_cert,
        admin_key_file=creds.admin_key,
    )
    monkeypatch.setattr(operator, "request_token", lambda info: "operator-token")
    operator_kubeconfig = operator.write_kubeconfig(info)
    runner = initrunner.InitRunner(cast(Any, None), info.apiserver_url, b"ca", tmp_path / "initc")
    run = initrunner.Run("ns", "pod", "uid-1", (), "gang", "pcs-ic-sat")
    _, initc_kubeconfig = runner._prepare(run, "initc-token", b"ca")
    keys = [creds.ca_key, creds.apiserver_key, creds.admin_key, creds.sa_key]
    keys += [creds.component(user)[1] for user in credentials.COMPONENT_USERS]
    for path in [*keys, admin, operator_kubeconfig, initc_kubeconfig]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for secret in (b"PRIVATE KEY", b"client-key-data", b"operator-token", b"initc-token"):
        modes = [mode for mode, data in writes if secret in data]
        assert modes and set(modes) == {0o600}, secret


# --- state and processes -----------------------------------------------------------------------------


def test_state_round_trip(tmp_path: Path) -> None:
    info = ClusterInfo(
        state_dir=tmp_path,
        kubeconfig=tmp_path / "kubeconfig",
        apiserver_url="https://127.0.0.1:1",
        ca_file=tmp_path / "ca.crt",
        admin_cert_file=tmp_path / "admin.crt",
        admin_key_file=tmp_path / "admin.key",
        components={"etcd": Component("etcd", 42, 2379, tmp_path / "logs" / "etcd.log", ["etcd", "--x"])},
        nodes=3,
        complete=True,
    )
    save(info)
    assert load(tmp_path) == info
    assert load(tmp_path / "missing") is None
    (tmp_path / "state.json").write_text("{not json")
    assert load(tmp_path) is None


def test_spawn_detached_and_stop(tmp_path: Path) -> None:
    marker = str(tmp_path) + os.sep
    log = tmp_path / "logs" / "sleeper.log"
    script = "import sys, time; print('started', flush=True); time.sleep(60)"
    pid = processes.spawn([sys.executable, "-c", script, marker], log)
    try:
        processes.wait_for("sleeper output", lambda: "started" in processes.log_tail(log), 10)
        assert processes.is_alive(pid)
        assert processes.belongs_to(pid, marker)
        assert not processes.belongs_to(pid, "/somewhere/else/")
        assert os.getsid(pid) == pid  # its own session: survives our terminal
        assert processes.stop([pid], "/somewhere/else/") == []  # not ours by marker: untouched
        assert processes.is_alive(pid)
    finally:
        assert processes.stop([pid], marker, grace=2) == []
    assert not processes.is_alive(pid)
    assert processes.log_tail(log) == "started"


def test_wait_for_reports_dead_component() -> None:
    with pytest.raises(processes.ComponentFailed, match="etcd died"):
        processes.wait_for("x", lambda: False, 5, alive=lambda: "etcd died")
    with pytest.raises(processes.ComponentFailed, match="timed out"):
        processes.wait_for("x", lambda: False, 0.2)


def test_cli_parser() -> None:
    args = build_parser().parse_args(["nodes", "add", "--count", "3", "--gpus", "2", "--state-dir", "/tmp/x"])
    assert (args.count, args.gpus, args.cpu, args.name_prefix, args.state_dir) == (
        3,
        2,
        "64",
        "fake-node-",
        "/tmp/x",
    )
    args = build_parser().parse_args(["up"])
    assert args.nodes == 20 and args.apiserver_port is None
