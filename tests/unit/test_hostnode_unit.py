"""The host node's pure parts without a cluster: pod addresses, the Node and Lease it registers, the
service proxy's plan (EndpointSlices -> ready backends) and the iptables rules it writes, image flags and
configs, paths inside a root, and the init runner's rootfs-mode hooks."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from localcluster import hostnode, images, initrunner, sandbox, serviceproxy
from localcluster.images import DEFAULT_PATH, ImageConfig, ImageError, ImageRootfs
from localcluster.podnet import IPPool, PoolExhausted, netns_name, veth_name
from localcluster.serviceproxy import Backend, ServicePort
from localcluster.state import ClusterInfo

NET = IPv4Network("10.244.250.0/24")


# --- addresses ---------------------------------------------------------------------------------------------
def test_ip_pool_allocates_lowest_free_and_keeps_reported_addresses() -> None:
    pool = IPPool.parse("10.244.250.0/29")
    assert pool.gateway == IPv4Address("10.244.250.1")
    assert pool.allocate("a") == IPv4Address("10.244.250.2")
    assert pool.allocate("a") == IPv4Address("10.244.250.2")  # stable per pod
    assert pool.allocate("b", preferred="10.244.250.5") == IPv4Address("10.244.250.5")  # a restarted node
    assert pool.allocate("c", preferred="10.244.250.5") == IPv4Address("10.244.250.3")  # taken: next free
    assert pool.allocate("d", preferred="10.9.9.9") == IPv4Address("10.244.250.4")  # outside the CIDR
    assert pool.allocate("e", preferred="10.244.250.1") == IPv4Address("10.244.250.6")  # the gateway
    with pytest.raises(PoolExhausted):
        pool.allocate("f")
    pool.release("a")
    assert pool.allocate("f") == IPv4Address("10.244.250.2")
    assert "10.244.250.7" in pool and "10.244.251.1" not in pool and "junk" not in pool
    assert pool.index(IPv4Address("10.244.250.6")) == 6
    with pytest.raises(ValueError):
        IPPool.parse("10.0.0.0/31")


def test_names_fit_the_kernel_limits() -> None:
    assert len(veth_name(IPPool.parse("10.0.0.0/8").index(IPv4Address("10.255.255.254")))) <= 15
    assert netns_name("uid-1").startswith("grovehn-")


# --- the Node and its Lease --------------------------------------------------------------------------------
def test_node_manifest_is_tainted_labelled_and_not_kwok() -> None:
    node = hostnode.node_manifest(
        "grove-host", IPPool.parse("10.244.250.0/24"), {"cpu": "2", "memory": "1Ki", "pods": "110"}, "T"
    )
    meta = node["metadata"]
    assert "annotations" not in meta  # no kwok.x-k8s.io/node: KWOK must leave it alone
    assert meta["labels"][hostnode.HOST_NODE_LABEL] == "true"
    assert (
        meta["labels"]["kubernetes.io/hostname"] == "grove-host"
        and meta["labels"]["kubernetes.io/os"] == "linux"
    )
    assert (
        node["spec"]["taints"] == [hostnode.HOST_NODE_TAINT] and node["spec"]["podCIDR"] == "10.244.250.0/24"
    )
    status = node["status"]
    assert status["allocatable"] == {"cpu": "2", "memory": "1Ki", "pods": "110"}
    assert {"type": "InternalIP", "address": "10.244.250.1"} in status["addresses"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    # a pod that selects and tolerates it would be scheduled there
    assert hostnode.POD_NODE_SELECTOR.items() <= meta["labels"].items()
    taint, toleration = hostnode.HOST_NODE_TAINT, hostnode.POD_TOLERATION
    assert (toleration["key"], toleration["value"], toleration["effect"]) == (
        taint["key"],
        taint["value"],
        taint["effect"],
    )


def test_node_status_keeps_transition_times_and_reports_not_ready() -> None:
    pool = IPPool.parse("10.244.250.0/24")
    first = hostnode.node_status("n", pool, {}, True, "T1")
    again = hostnode.node_status("n", pool, {}, True, "T2", first["conditions"])
    ready = {c["type"]: c for c in again["conditions"]}["Ready"]
    assert ready["lastHeartbeatTime"] == "T2" and ready["lastTransitionTime"] == "T1"
    down = {
        c["type"]: c
        for c in hostnode.node_status("n", pool, {}, False, "T3", again["conditions"])["conditions"]
    }
    assert down["Ready"]["status"] == "False" and down["Ready"]["lastTransitionTime"] == "T3"
    assert down["MemoryPressure"]["lastTransitionTime"] == "T1"


def test_taints_of_a_reregistered_node_and_the_lease() -> None:
    existing = [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        dict(hostnode.HOST_NODE_TAINT),
    ]
    assert hostnode.merged_taints(existing) == [hostnode.HOST_NODE_TAINT, existing[0]]
    lease = hostnode.lease_body("grove-host", "node-uid", "2026-12-07T10:00:00.000000Z")
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "node-uid"
    assert lease["spec"]["holderIdentity"] == "grove-host" and lease["spec"]["leaseDurationSeconds"] == 40
    capacity = hostnode.machine_capacity(7)
    assert capacity["pods"] == "7" and int(capacity["cpu"]) >= 1 and capacity["memory"].endswith("Ki")
    assert int(capacity["ephemeral-storage"].removesuffix("Ki")) > 0  # charts request it


# --- service proxy plan --------------------------------------------------------------------------------------
def service(namespace: str, name: str, ip: str, *ports: tuple[str, int]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"clusterIP": ip, "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]},
    }


def endpoint_slice(
    namespace: str, service_name: str, ports: dict[str, int], *endpoints: tuple[str, dict[str, bool]]
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": namespace,
            "name": f"{service_name}-x",
            "labels": {serviceproxy.SERVICE_NAME_LABEL: service_name},
        },
        "addressType": "IPv4",
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports.items()],
        "endpoints": [
            {"addresses": [address], "conditions": conditions} for address, conditions in endpoints
        ],
    }


def test_ready_backends_follow_readiness_and_fall_back_to_terminating() -> None:
    slices = [
        endpoint_slice(
            "ns",
            "web",
            {"http": 8080, "metrics": 9090},
            ("10.244.250.2", {"ready": True}),
            ("10.244.250.3", {"ready": False, "serving": False}),
            ("10.244.250.4", {}),  # ready unset: ready
            ("10.0.0.7", {"ready": True}),  # a KWOK pod: not reachable from here
        )
    ]
    assert serviceproxy.ready_backends(slices, "http", NET) == (
        Backend("10.244.250.2", 8080),
        Backend("10.244.250.4", 8080),
    )
    assert serviceproxy.ready_backends(slices, "metrics", NET)[0].port == 9090
    assert serviceproxy.ready_backends(slices, "other", NET) == ()
    terminating = [
        endpoint_slice(
            "ns",
            "web",
            {"": 80},
            ("10.244.250.5", {"ready": False, "serving": True, "terminating": True}),
            ("10.244.250.6", {"ready": False, "serving": False, "terminating": True}),
        )
    ]
    assert serviceproxy.ready_backends(terminating, "", NET) == (Backend("10.244.250.5", 80),)


def test_plan_covers_local_services_only_and_relays_the_apiserver() -> None:
    services = [
        service("default", "kubernetes", "10.96.0.1", ("https", 443)),
        service("ns", "web", "10.96.1.1", ("http", 80), ("metrics", 9090)),
        service("ns", "unready", "10.96.1.2", ("http", 80)),
        service("ns", "kwok-only", "10.96.1.3", ("http", 80)),
        service("ns", "headless", "None", ("http", 80)),
    ]
    slices = [
        endpoint_slice("ns", "web", {"http": 8080}, ("10.244.250.2", {"ready": True})),
        endpoint_slice("ns", "unready", {"http": 8080}, ("10.244.250.3", {"ready": False})),
        endpoint_slice("ns", "kwok-only", {"http": 8080}, ("10.0.0.5", {"ready": True})),
        endpoint_slice("other", "web", {"http": 1}, ("10.244.250.9", {"ready": True})),  # another namespace's
    ]
    plan = serviceproxy.plan(services, slices, NET)
    assert plan.addresses == {"10.96.0.1", "10.96.1.1", "10.96.1.2"}
    assert plan.relays == {("10.96.0.1", 443)}
    # web's metrics port has no endpoint port and unready has no ready endpoint: both rejected.
    assert plan.ports == (
        ServicePort("10.96.1.1", 80, "ns/web:http", (Backend("10.244.250.2", 8080),)),
        ServicePort("10.96.1.1", 9090, "ns/web:metrics", ()),
        ServicePort("10.96.1.2", 80, "ns/unready:http", ()),
    )


WEBHOOKS = ServicePort(
    "10.96.1.1",
    443,
    "grove-install/grove-operator:webhooks",
    (Backend("10.244.250.2", 9443), Backend("10.244.250.3", 9443)),
)


def test_rules_dnat_to_a_random_endpoint_as_kube_proxy_writes_them() -> None:
    text = serviceproxy.rules([WEBHOOKS])
    match = "-d 10.96.1.1/32 -p tcp -m tcp --dport 443"
    comment = '-m comment --comment "grove-install/grove-operator:webhooks'
    hairpin = '-m conntrack --ctstate DNAT -m comment --comment "hairpin: a pod through its own Service"'
    assert text.splitlines() == [
        "*nat",
        ":GROVEHN-SERVICES - [0:0]",  # declared: emptied by iptables-restore --noflush, then refilled
        ":GROVEHN-POSTROUTING - [0:0]",
        f'-A GROVEHN-SERVICES {match} {comment} -> 10.244.250.2:9443"'
        " -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.244.250.2:9443",
        f'-A GROVEHN-SERVICES {match} {comment} -> 10.244.250.3:9443"'
        " -j DNAT --to-destination 10.244.250.3:9443",  # the last one unconditionally
        f"-A GROVEHN-POSTROUTING -s 10.244.250.2/32 -d 10.244.250.2/32 {hairpin} -j MASQUERADE",
        f"-A GROVEHN-POSTROUTING -s 10.244.250.3/32 -d 10.244.250.3/32 {hairpin} -j MASQUERADE",
        "COMMIT",
        "*filter",
        ":GROVEHN-SERVICES - [0:0]",
        "COMMIT",
    ]


def test_rules_pick_evenly_reject_without_endpoints_and_masquerade_each_endpoint_once() -> None:
    three = tuple(Backend(f"10.244.250.{n}", 8080) for n in (2, 3, 4))
    text = serviceproxy.rules(
        [
            ServicePort("10.96.1.5", 80, "ns/web:http", three),
            ServicePort("10.96.1.5", 81, "ns/web:alt", three),
            ServicePort("10.96.1.6", 80, "ns/gone", ()),
        ]
    )
    lines = text.splitlines()
    dnat = [line for line in lines if "--dport 80 " in line and "DNAT --to" in line]
    # 1/3, then 1/2 of the rest, then the rest: each endpoint a third of new connections.
    assert ["--probability 0.3333333333" in dnat[0], "--probability 0.5000000000" in dnat[1]] == [True, True]
    assert "statistic" not in dnat[2] and [line.split()[-1] for line in dnat] == [str(b) for b in three]
    assert sum("MASQUERADE" in line for line in lines) == 3
    (reject,) = [line for line in lines if "REJECT" in line]
    assert reject == (
        '-A GROVEHN-SERVICES -d 10.96.1.6/32 -p tcp -m tcp --dport 80 -m comment --comment "ns/gone has no'
        ' endpoints" -j REJECT --reject-with icmp-port-unreachable'
    )
    assert lines.index(reject) > lines.index("*filter")
    assert serviceproxy.rules([]).splitlines() == [
        "*nat",
        ":GROVEHN-SERVICES - [0:0]",
        ":GROVEHN-POSTROUTING - [0:0]",
        "COMMIT",
        "*filter",
        ":GROVEHN-SERVICES - [0:0]",
        "COMMIT",
    ]


# --- images -------------------------------------------------------------------------------------------------
def test_image_configs_and_flags(tmp_path: Path) -> None:
    inspect = [
        {
            "Id": "sha",
            "Config": {
                "User": "65532:65532",
                "Env": ["PATH=/opt/bin:/bin", "A=b=c"],
                "Cmd": ["grove-operator"],
            },
        }
    ]
    config = images.config_from_json(inspect)
    assert config == ImageConfig(
        user="65532:65532", env=(("PATH", "/opt/bin:/bin"), ("A", "b=c")), cmd=("grove-operator",)
    )
    assert images.config_from_json({"config": {"Entrypoint": ["/e"]}}).entrypoint == ("/e",)
    assert ImageConfig().environment == {"PATH": DEFAULT_PATH}
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(inspect))
    loaded = images.load([f"localhost/grove-py:0.1.0={rootfs}"], [f"localhost/grove-py:0.1.0={config_file}"])
    image = loaded["localhost/grove-py:0.1.0"]
    assert image.rootfs == rootfs and image.config.user == "65532:65532"
    flags = [f.split("=", 1)[1] for f in images.flags([image], tmp_path / "unused")]
    assert images.load(flags[:1], flags[1:]) == loaded
    # A config built in Python (no file) reaches a child process through a file written for it.
    built = ImageRootfs("img:2", rootfs, ImageConfig(user="65532", env=(("PATH", "/opt/bin"),), cmd=("run",)))
    written = [f.split("=", 1)[1] for f in images.flags([built], tmp_path / "configs")]
    assert written == [f"img:2={rootfs}", f"img:2={next((tmp_path / 'configs').iterdir())}"]
    assert images.load(written[:1], written[1:])["img:2"].config == built.config
    assert images.flags([built], tmp_path / "configs") == images.flags([built], tmp_path / "configs")
    assert images.flags([ImageRootfs("plain", rootfs)], tmp_path / "none") == [f"--rootfs=plain={rootfs}"]
    with pytest.raises(ImageError, match="IMAGE=PATH"):
        images.load(["no-equals"])
    with pytest.raises(ImageError, match="not a directory"):
        images.load([f"x={tmp_path / 'missing'}"])
    with pytest.raises(ImageError, match="without --rootfs"):
        images.load([], [f"x={config_file}"])


# --- paths inside a root ---------------------------------------------------------------------------------------
def test_resolve_in_root_never_leaves_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    (root / "var").mkdir()
    os.symlink("/run", root / "var" / "run")  # Debian's absolute link
    os.symlink("../../../../etc", root / "var" / "up")
    os.symlink("loop", root / "loop")
    r = str(root)
    assert sandbox.resolve_in_root(r, "/var/run/secrets/x") == f"{r}/run/secrets/x"
    assert sandbox.resolve_in_root(r, "/var/up/passwd") == f"{r}/etc/passwd"
    assert sandbox.resolve_in_root(r, "/../../etc") == f"{r}/etc"
    with pytest.raises(OSError, match="symbolic links"):
        sandbox.resolve_in_root(r, "/loop/x")
    made = sandbox.make_target(r, "/var/run/secrets/token", directory=False)
    assert made == f"{r}/run/secrets/token" and Path(made).is_file()
    assert (
        not Path("/run/secrets/token").exists()
        or Path("/run/secrets/token").stat().st_ino != Path(made).stat().st_ino
    )


def test_sandbox_spec_round_trips_through_json(tmp_path: Path) -> None:
    spec = sandbox.Spec(
        rootfs="/r",
        layer=str(tmp_path / "layer"),
        argv=("a", "b"),
        env={"K": "V"},
        uid=1,
        gid=2,
        groups=(3,),
        mounts=(sandbox.Mount("/s", "/t", True),),
        parent_pid=9,
    )
    path = sandbox.write_spec(spec)
    assert sandbox.Spec.from_json(path.read_text()) == spec
    assert sandbox.run_argv(path)[-2:] == ["run", str(path)]
    assert sandbox.exec_argv(5, path)[-3:] == ["exec", "5", str(path)]


# --- the init runner's rootfs mode hooks --------------------------------------------------------------------
def _info(tmp_path: Path) -> ClusterInfo:
    return ClusterInfo(
        state_dir=tmp_path,
        kubeconfig=tmp_path / "kubeconfig",
        apiserver_url="https://127.0.0.1:6443",
        ca_file=tmp_path / "ca",
        admin_cert_file=tmp_path / "crt",
        admin_key_file=tmp_path / "key",
    )


def test_init_runner_command_line_carries_and_keeps_rootfs_flags(tmp_path: Path) -> None:
    image = ImageRootfs("img:1", tmp_path, ImageConfig(), tmp_path / "c.json")
    flags = images.flags([image], tmp_path / "configs")
    argv = initrunner.argv(_info(tmp_path), flags)
    assert argv[-2:] == [f"--rootfs=img:1={tmp_path}", f"--image-config=img:1={tmp_path / 'c.json'}"]
    assert initrunner.rootfs_flags(argv) == flags
    assert initrunner.rootfs_flags(initrunner.argv(_info(tmp_path))) == []
    args = initrunner.build_parser().parse_args([*argv[3:]])
    assert args.rootfs == [f"img:1={tmp_path}"] and args.image_config == [f"img:1={tmp_path / 'c.json'}"]
