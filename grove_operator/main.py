"""`grove-operator`: Grove's admission webhooks and controllers.

    grove-operator --config /etc/grove-operator/config/config.yaml           # in a pod
    grove-operator --config config.yaml --kubeconfig operator.kubeconfig     # outside the cluster
    grove-operator --webhooks-only ...                                       # no controllers

The webhooks are answered by a child process (the same command with `--webhook-process`) unless
`server.webhooks.ownProcess` is false or the process serves webhooks only (`grove_operator/webhooks.py`).

Without `--config` the default OperatorConfiguration is used. Without `--kubeconfig` the in-cluster
ServiceAccount is used. Exit codes: 0 after a graceful shutdown, 2 for a bad configuration or identity,
1 for other startup failures.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop
from pydantic import ValidationError

from grove_api.operatorconfig import OperatorConfiguration, load, version, with_namespace
from grove_operator import webhooks
from grove_operator.identity import IdentityError, operator_username, running_namespace
from kube.logs import configure_logging, tag_records

log = logging.getLogger("grove_operator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grove-operator", description="Grove's operator: admission webhooks and controllers."
    )
    parser.add_argument("--config", type=Path, help="OperatorConfiguration YAML (default: built-in defaults)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster ServiceAccount)")
    parser.add_argument(
        "--webhooks-only", action="store_true", help="serve the admission webhooks only (no controllers)"
    )
    parser.add_argument(webhooks.PROCESS_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    return parser


def load_config(path: Path | None) -> OperatorConfiguration:
    """The configuration file (or the defaults), in the namespace the operator runs in unless it names one."""
    config = OperatorConfiguration() if path is None else load(path)
    return with_namespace(config, running_namespace())


async def _main(args: argparse.Namespace, config: OperatorConfiguration, username: str | None) -> int:
    if args.webhook_process:  # without kubernetes_asyncio or the controllers' modules: a smaller process
        return await webhooks.serve_child(config, username)
    from grove_operator import apicalls
    from grove_operator.runtime import Operator, run

    client = await apicalls.api_client(args.kubeconfig, config)
    async with client:
        child = config.server.webhooks.own_process and not args.webhooks_only
        operator = Operator(
            config,
            client,
            reconciler_username=username,
            controllers=not args.webhooks_only,
            connection=await apicalls.connection(client, in_cluster=not args.kubeconfig),
            webhook_process=_child_argv(args) if child else None,
        )
        return await run(operator)


def _child_argv(args: argparse.Namespace) -> list[str]:
    """This command again, for the webhook process (which adds `--webhook-process`)."""
    argv = [sys.executable, "-m", "grove_operator.main"]
    if args.config is not None:
        argv.append(f"--config={args.config}")
    if args.kubeconfig:
        argv.append(f"--kubeconfig={args.kubeconfig}")
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"grove-operator {version()}")
        return 0
    try:
        config = load_config(args.config)
    except (OSError, ValidationError, ValueError) as err:
        print(f"grove-operator: error: invalid configuration {args.config}: {err}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format)
    if args.webhook_process:  # its lines share the parent's stream
        tag_records(component="webhook-process")
    # Who the operator is: the authorizer lets it through, the pod webhook trusts only its pods admitted on
    # creation. Without the authorizer an unknown identity is not fatal: those pods are gated as usual.
    username = None
    try:
        username = operator_username(config)
    except IdentityError as err:
        if config.authorizer.enabled:
            log.error("cannot start: %s", err)
            print(f"grove-operator: error: {err}", file=sys.stderr)
            return 2
        log.warning(
            "the operator's identity is unknown; gangs admitted on creation are released as usual: %s", err
        )
    log.info(
        "starting grove-operator",
        extra={
            "version": version(),
            "config": str(args.config) if args.config else None,
            "kubeconfig": args.kubeconfig or "in-cluster",
            "webhook_mode": config.server.webhooks.mode,
            "authorizer": config.authorizer.enabled,
            "identity": username,
        },
    )
    try:
        # uvloop: the webhook's per-request overhead is the event loop's; it roughly halves it.
        return uvloop.run(_main(args, config, username))
    except KeyboardInterrupt:
        return 0
    except Exception as err:
        log.error("grove-operator failed", extra={"error": f"{type(err).__name__}: {err}"}, exc_info=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
