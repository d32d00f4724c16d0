"""`grove-cluster`: start, inspect and stop the local cluster, and manage its fake nodes.

Progress goes to stderr and `up` ends with `export KUBECONFIG=...` on stdout, so
`eval "$(grove-cluster up)"` points the current shell at the cluster.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from localcluster import binaries, cluster, images, nodes, versions
from localcluster import operator as grove_operator
from localcluster.binaries import BuildError
from localcluster.ports import PortInUseError
from localcluster.processes import ComponentFailed
from localcluster.state import ClusterInfo


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir).absolute() if args.state_dir else cluster.default_state_dir()


def _export_line(info: ClusterInfo) -> str:
    return f"export KUBECONFIG={info.kubeconfig}"


def _require(state_dir: Path) -> ClusterInfo:
    info = cluster.load(state_dir)
    if info is None or not info.complete:
        raise SystemExit(f"no running cluster in {state_dir}; start one with `grove-cluster up`")
    return info


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    before = cluster.load(state_dir)
    initc_images = None
    if args.initc_rootfs or args.initc_image_config:
        initc_images = list(images.load(args.initc_rootfs, args.initc_image_config).values())
    info = cluster.up(
        state_dir,
        nodes=args.nodes,
        apiserver_port=args.apiserver_port,
        kwok_configs=[Path(c).absolute() for c in args.kwok_config],
        initc_images=initc_images,
    )
    reused = before is not None and before.pids == info.pids
    # The report goes to stderr so that stdout is exactly the export line (for `eval "$(... up)"`).
    if reused:
        report = f"cluster already running in {state_dir} (apiserver {info.apiserver_url}, pids {info.pids})"
    else:
        report = f"cluster up in {state_dir}: apiserver {info.apiserver_url}, {info.nodes} fake node(s)"
    print(report, file=sys.stderr, flush=True)
    print(_export_line(info), flush=True)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    stopped = cluster.down(state_dir)
    print(f"stopped pids {stopped}, removed {state_dir}" if stopped else f"nothing running in {state_dir}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    result = cluster.status(_state_dir(args))
    print(result.format())
    return 0 if result.healthy else 1


def cmd_build(args: argparse.Namespace) -> int:
    found = binaries.ensure(lambda m: print(m, file=sys.stderr, flush=True)).as_dict()
    for name, path in found.items():
        print(f"{name}: {path}")
    folders = {path.parent for path in found.values()}
    print(folders.pop() if len(folders) == 1 else binaries.cache_bin_dir())
    return 0


def cmd_nodes_add(args: argparse.Namespace) -> int:
    info = _require(_state_dir(args))
    shape = nodes.NodeShape(cpu=args.cpu, memory=args.memory, pods=args.pods, gpus=args.gpus)
    names = nodes.add(info, args.count, shape, args.name_prefix)
    print("\n".join(names))
    return 0


def cmd_nodes_cordon(args: argparse.Namespace) -> int:
    nodes.cordon(_require(_state_dir(args)), args.names)
    print("\n".join(f"{name} cordoned" for name in args.names))
    return 0


def cmd_nodes_uncordon(args: argparse.Namespace) -> int:
    nodes.uncordon(_require(_state_dir(args)), args.names)
    print("\n".join(f"{name} uncordoned" for name in args.names))
    return 0


def cmd_nodes_list(args: argparse.Namespace) -> int:
    items = nodes.list_nodes(_require(_state_dir(args)))
    rows = [("NAME", "READY", "SCHEDULABLE", "ZONE", "BLOCK", "RACK")]
    for node in sorted(items, key=lambda n: n["metadata"]["name"]):
        labels = node["metadata"].get("labels", {})
        rows.append(
            (
                node["metadata"]["name"],
                "yes" if nodes.is_ready(node) else "no",
                "no" if node.get("spec", {}).get("unschedulable") else "yes",
                labels.get(nodes.ZONE_LABEL, "-"),
                labels.get(nodes.BLOCK_LABEL, "-"),
                labels.get(nodes.RACK_LABEL, "-"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_operator_start(args: argparse.Namespace) -> int:
    state = grove_operator.start(_state_dir(args))
    print(f"grove-operator running (pid {state.pid}), log {state.log}")
    return 0


def cmd_operator_stop(args: argparse.Namespace) -> int:
    stopped = grove_operator.stop(_state_dir(args))
    print(f"grove-operator stopped (pids {stopped})" if stopped else "grove-operator was not running")
    return 0


def cmd_operator_restart(args: argparse.Namespace) -> int:
    state = grove_operator.restart(_state_dir(args))
    print(f"grove-operator restarted (pid {state.pid}), log {state.log}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grove-cluster",
        description=(
            f"A local Kubernetes {versions.K8S_VERSION} control plane (etcd {versions.ETCD_VERSION}, "
            f"KWOK {versions.KWOK_VERSION}) with fake nodes."
        ),
    )
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir", help="cluster state directory (default: $GROVE_STATE_DIR or ./.grove/cluster)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", parents=[state], help="start the cluster (no-op when it already runs)")
    p.add_argument("--nodes", type=int, default=20, help="number of fake nodes to create (default 20)")
    p.add_argument("--apiserver-port", type=int, help="kube-apiserver port (default: a free one)")
    p.add_argument(
        "--kwok-config", action="append", default=[], help="extra KWOK config file (e.g. Stages); repeatable"
    )
    p.add_argument(
        "--initc-rootfs",
        action="append",
        default=[],
        metavar="IMAGE=DIR",
        help="run grove-initc containers of IMAGE from its filesystem DIR (init runner rootfs mode); repeatable",
    )
    p.add_argument(
        "--initc-image-config",
        action="append",
        default=[],
        metavar="IMAGE=FILE",
        help="IMAGE's config (inspect JSON)",
    )
    p.set_defaults(func=cmd_up)

    sub.add_parser("down", parents=[state], help="stop the cluster and remove its state").set_defaults(
        func=cmd_down
    )
    sub.add_parser("status", parents=[state], help="component and node health").set_defaults(func=cmd_status)
    sub.add_parser("build", help="build or locate the binaries and print their directory").set_defaults(
        func=cmd_build
    )

    n = sub.add_parser("nodes", help="manage fake nodes").add_subparsers(dest="nodes_command", required=True)
    p = n.add_parser("add", parents=[state], help="create more fake nodes")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--cpu", default=nodes.DEFAULT_SHAPE.cpu)
    p.add_argument("--memory", default=nodes.DEFAULT_SHAPE.memory)
    p.add_argument("--gpus", type=int, default=nodes.DEFAULT_SHAPE.gpus)
    p.add_argument("--pods", type=int, default=nodes.DEFAULT_SHAPE.pods)
    p.add_argument("--name-prefix", default=nodes.DEFAULT_PREFIX)
    p.set_defaults(func=cmd_nodes_add)
    p = n.add_parser("cordon", parents=[state], help="mark nodes unschedulable")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_nodes_cordon)
    p = n.add_parser("uncordon", parents=[state], help="mark nodes schedulable again")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_nodes_uncordon)
    n.add_parser("list", parents=[state], help="list nodes").set_defaults(func=cmd_nodes_list)

    o = sub.add_parser("operator", help="the grove operator (started by `up`)").add_subparsers(
        dest="operator_command", required=True
    )
    o.add_parser(
        "start", parents=[state], help="start it (no-op when running) and wait until ready"
    ).set_defaults(func=cmd_operator_start)
    o.add_parser("stop", parents=[state], help="stop it (its webhooks then refuse requests)").set_defaults(
        func=cmd_operator_stop
    )
    o.add_parser("restart", parents=[state], help="stop and start it").set_defaults(func=cmd_operator_restart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (BuildError, ComponentFailed, PortInUseError, images.ImageError) as err:
        print(f"grove-cluster: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
