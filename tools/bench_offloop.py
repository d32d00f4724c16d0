"""Prototype for `bench-webhook --modes thread`: the operator with its controllers off the webhooks' loop.

    python -m tools.bench_offloop grove_operator.main --config=... --kubeconfig=...

Runs `grove_operator.main` unchanged except for one thing: `Operator._controllers` (the reconciler and the
gang admitter, with their informers) runs on an event loop of its own in a worker thread, with an API client
of its own, so a long reconcile or admission pass no longer holds the loop that answers admission requests.
Both threads still share the interpreter lock: while a pass computes, the webhook thread gets the lock back
within the switch interval (`GROVE_BENCH_SWITCH_INTERVAL` seconds, Python's default 0.005 when unset).

For measurements only (it patches the class at start, nothing in the operator's code changes); the second
argument, `grove_operator.main`, is ignored and only there so that `grove-cluster down` recognises the
process as the cluster's operator and stops it with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from typing import Any

import uvloop


def install(kubeconfig: str | None) -> None:
    try:
        from grove_operator import apicalls as calls  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # before the rename
        from grove_operator import kube as calls  # type: ignore[attr-defined,no-redef,unused-ignore]
    from grove_operator import runtime

    operator_class: Any = runtime.Operator
    controllers = operator_class._controllers
    clients: dict[int, Any] = {}  # thread id -> the API client of the loop running there

    def get_client(self: Any) -> Any:
        return clients.get(threading.get_ident(), self.__dict__["_main_client"])

    def set_client(self: Any, value: Any) -> None:
        self.__dict__["_main_client"] = value

    operator_class.client = property(get_client, set_client)

    async def off_loop(self: Any) -> None:
        inner: dict[str, Any] = {}

        async def run_here() -> None:
            inner["loop"], inner["task"] = asyncio.get_running_loop(), asyncio.current_task()
            api = await calls.api_client(kubeconfig, self.config)
            async with api:
                clients[threading.get_ident()] = api
                try:
                    await controllers(self)
                finally:
                    clients.pop(threading.get_ident(), None)

        def thread() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                uvloop.run(run_here())

        try:
            await asyncio.to_thread(thread)
        except asyncio.CancelledError:
            if "task" in inner:
                inner["loop"].call_soon_threadsafe(inner["task"].cancel)
            raise

    operator_class._controllers = off_loop


def main() -> int:
    argv = [a for a in sys.argv[1:] if a != "grove_operator.main"]
    interval = os.environ.get("GROVE_BENCH_SWITCH_INTERVAL")
    if interval:
        sys.setswitchinterval(float(interval))
    from grove_operator import main as operator_main

    args, _ = operator_main.build_parser().parse_known_args(argv)
    install(args.kubeconfig)
    return operator_main.main(argv)


if __name__ == "__main__":
    sys.exit(main())
