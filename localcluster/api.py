"""Talking to the apiserver: a tiny synchronous HTTPS probe and kubernetes_asyncio client construction.

Health probes (`/readyz`, `/version`) use the standard library so that `up` on a running cluster and
`status` stay fast and free of event-loop concerns; object operations use kubernetes_asyncio, the client
the rest of the project uses.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from kubernetes_asyncio.client import ApiClient, Configuration

T = TypeVar("T")


def ssl_context(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Verify the apiserver against the cluster CA and present the admin client certificate."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body) of a GET; connection errors raise OSError."""
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def get_json(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 5.0) -> Any:
    status, body = get(url, ctx, timeout)
    if status != 200:
        raise OSError(f"GET {url}: HTTP {status}: {body[:200]!r}")
    return json.loads(body)


def post_json(url: str, body: Any, ctx: ssl.SSLContext | None = None, timeout: float = 5.0) -> Any:
    """POST `body` as JSON and return the decoded answer; a non-2xx status raises OSError with its body."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raise OSError(f"POST {url}: HTTP {err.code}: {err.read()[:200]!r}") from None


def configuration(server: str, ca_file: Path, cert_file: Path, key_file: Path) -> Configuration:
    """A kubernetes_asyncio Configuration for the admin identity (no kubeconfig parsing needed)."""
    config = Configuration(host=server)
    config.ssl_ca_cert = str(ca_file)
    config.cert_file = str(cert_file)
    config.key_file = str(key_file)
    config.verify_ssl = True
    return config


def client(config: Configuration) -> ApiClient:
    """A new ApiClient; use it as `async with` inside the event loop that will run the requests."""
    return ApiClient(configuration=config)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from synchronous code, even when called from inside a running loop.

    The sync API (`up`, `nodes add`, ...) is used by the CLI and by synchronous pytest fixtures, but also
    from async tests; there, `asyncio.run` would refuse, so the coroutine gets its own loop in a thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
