"""`make chaos`: the chaos suite's full profile (a 1,000-pod PodCliqueSet with scaling groups) on a local
cluster of its own: every fault of tests/chaos/faults.py in every phase of the workload's lifecycle, a
scoreboard printed as a table and written as JSON (docs/chaos.md).

    python -m tools.chaos [--profile full|short] [--seed N] [--only NAME ...] [--out bench-results/chaos.json]
        [--keep-cluster DIR]

The seed (printed) makes a run's fault points replayable. The exit code is 1 if any fault did not converge
or lost anything."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

from kubernetes_asyncio.client import ApiClient

from localcluster import cluster as localcluster
from tests.chaos.profiles import PROFILES
from tests.chaos.run import baseline, run
from tests.chaos.scoreboard import table, write

NODES = 5  # the cluster's own nodes; the workload runs on a private pool the suite adds


async def _main(args: argparse.Namespace, state_dir: Path, workdir: Path) -> int:
    info = localcluster.up(state_dir, nodes=NODES, progress=lambda msg: print(msg, file=sys.stderr))
    profile = PROFILES[args.profile]
    async with ApiClient(configuration=info.api_configuration()) as api:
        rows = await run(info, api, profile, args.seed, workdir, args.only)
    board = table(rows, baseline(rows))
    print(board)
    write(args.out, rows, {"profile": profile.name, "seed": args.seed, "pods": profile.shape.pods})
    print(f"wrote {args.out}")
    return 0 if all(r.ok for r in rows) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1 << 31))
    parser.add_argument("--only", nargs="*", default=(), help="faults whose name contains one of these")
    parser.add_argument("--out", type=Path, default=Path("bench-results/chaos.json"))
    parser.add_argument(
        "--keep-cluster",
        type=Path,
        metavar="DIR",
        help="run the cluster in DIR and leave it up afterwards, for inspection (grove-cluster down DIR/cluster)",
    )
    args = parser.parse_args()
    if args.keep_cluster:
        args.keep_cluster.mkdir(parents=True, exist_ok=True)
        state_dir = args.keep_cluster / "cluster"
        code = asyncio.run(_main(args, state_dir, args.keep_cluster))
        print(f"cluster left up in {state_dir}", file=sys.stderr)
        sys.exit(code)
    with tempfile.TemporaryDirectory(prefix="grove-chaos-") as tmp:
        state_dir = Path(tmp) / "cluster"
        try:
            code = asyncio.run(_main(args, state_dir, Path(tmp)))
        finally:
            localcluster.down(state_dir)
    sys.exit(code)


if __name__ == "__main__":
    main()
