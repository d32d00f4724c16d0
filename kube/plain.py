"""Reading objects from the apiserver with aiohttp alone: for the webhook process's two lookups.

The admission webhooks read two things from the apiserver: a ClusterTopologyBinding (validation) and a
PodCliqueSet's metadata (the authorizer). Everything else in the operator goes through `kube.client`, on
kubernetes_asyncio's `ApiClient`, whose package imports every API model (~35 MB). The webhook process
(`grove_operator/webhooks.py`) needs none of them, so it reads with a plain aiohttp session, from the
connection the operator resolved (`Connection`: its kubeconfig, or the in-cluster ServiceAccount).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

JSON = dict[str, Any]

TOKEN_REREAD_SECONDS = 60.0  # a projected ServiceAccount token is rotated by the kubelet; read it again


class ReadFailed(Exception):
    """A read failed for another reason than "not found" (the message says which and why)."""


@dataclass(frozen=True)
class Connection:
    """Where the apiserver is and how to authenticate to it (no secret in `repr`)."""

    host: str
    ca_file: str | None = None
    verify: bool = True
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None  # the Authorization header's value, "Bearer …"
    token_file: str | None = None  # or read from this file (the in-cluster ServiceAccount's token)

    def __repr__(self) -> str:
        return f"Connection(host={self.host!r})"

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> Connection:
        return cls(**orjson.loads(data))

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.host.startswith("https:"):
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


class PlainReader:
    """GET one object as JSON (None when it does not exist), on one aiohttp session."""

    def __init__(self, connection: Connection, timeout: float = 10.0) -> None:
        self.connection = connection
        self._ssl = connection.ssl_context()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token: tuple[float, str] | None = None

    def _authorization(self) -> str | None:
        if self.connection.token_file is None:
            return self.connection.token
        now = time.monotonic()
        if self._token is None or now - self._token[0] > TOKEN_REREAD_SECONDS:
            self._token = (now, "Bearer " + Path(self.connection.token_file).read_text().strip())
        return self._token[1]

    async def get(self, path: str, accept: str = "application/json") -> JSON | None:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False)
        headers = {"Accept": accept}
        if (authorization := self._authorization()) is not None:
            headers["Authorization"] = authorization
        url = self.connection.host.rstrip("/") + path
        try:
            async with self._session.get(url, headers=headers) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ReadFailed(f"GET {path}: {type(err).__name__}: {err}") from err
        if status == 404:
            return None
        if status != 200:
            message = body[:500].decode(errors="replace")
            raise ReadFailed(f"GET {path}: HTTP {status}: {message}")
        obj = orjson.loads(body)
        if not isinstance(obj, dict):
            raise ReadFailed(f"GET {path}: expected a JSON object, got {type(obj).__name__}")
        return obj

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
