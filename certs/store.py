"""Where the webhook's certificates live: a directory of PEM files, or a Kubernetes Secret.

Both hold the same four entries, named like a `kubernetes.io/tls` Secret: `tls.crt` (serving certificate),
`tls.key` (its key), `ca.crt` (the CA bundle, possibly several CAs during a CA rotation) and, for
self-signed ("auto") certificates, `ca.key` (the key of the CA that signs new serving certificates).
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kubernetes_asyncio.client.exceptions import ApiException

TLS_CRT = "tls.crt"
TLS_KEY = "tls.key"
CA_CRT = "ca.crt"
CA_KEY = "ca.key"
PRIVATE = frozenset({TLS_KEY, CA_KEY})

SECRET_TYPE = "kubernetes.io/tls"
# Not the labels of a workload's children (`app.kubernetes.io/managed-by: grove-operator`, `part-of: <pcs>`):
# tools that clean up a PodCliqueSet's objects by those labels must never touch the operator's own Secret.
SECRET_LABELS: Mapping[str, str] = {
    "app.kubernetes.io/name": "grove-operator",
    "app.kubernetes.io/component": "webhook-serving-certificate",
}
# What earlier versions labelled the Secret with; dropped when the Secret is next written.
_FORMER_LABELS: Mapping[str, str] = {
    "app.kubernetes.io/managed-by": "grove-operator",
    "app.kubernetes.io/component": "webhook",
    "app.kubernetes.io/part-of": "grove",
}


class StoreConflict(Exception):
    """Somebody else wrote the store since we read it (another replica): read again and re-plan."""


@dataclass(frozen=True)
class CertFiles:
    """The PEM contents of one certificate set (empty bytes = absent)."""

    tls_crt: bytes
    tls_key: bytes
    ca_crt: bytes = b""
    ca_key: bytes = b""

    def entries(self, *, include_ca_key: bool = True) -> dict[str, bytes]:
        out = {TLS_CRT: self.tls_crt, TLS_KEY: self.tls_key, CA_CRT: self.ca_crt}
        if include_ca_key and self.ca_key:
            out[CA_KEY] = self.ca_key
        return out

    @classmethod
    def from_entries(cls, entries: Mapping[str, bytes]) -> CertFiles | None:
        """None when there is no serving certificate at all (e.g. Grove's empty placeholder Secret)."""
        if not entries.get(TLS_CRT, b"").strip() and not entries.get(TLS_KEY, b"").strip():
            return None
        return cls(
            tls_crt=entries.get(TLS_CRT, b""),
            tls_key=entries.get(TLS_KEY, b""),
            ca_crt=entries.get(CA_CRT, b""),
            ca_key=entries.get(CA_KEY, b""),
        )


def atomic_write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write `data` to a temporary file next to `path`, fsync, then rename it over `path`.

    Readers see either the old or the new content, never a partial file.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class DirectoryStore:
    """PEM files in a directory (the webhook server's certificate directory).

    Each file is replaced atomically and unchanged files are not rewritten (their mtime does not move).
    Files are written CA first and the serving certificate last; a reader that still sees a certificate
    and key from different generations detects the mismatch and reads again (`webhook.tls` does).
    The directory may also be a mounted Secret (kubelet swaps all files at once via a `..data` symlink).
    """

    def __init__(self, path: str | Path, *, include_ca_key: bool = True) -> None:
        self.path = Path(path)
        self.include_ca_key = include_ca_key

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.path)!r})"

    def read_entries(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for name in (TLS_CRT, TLS_KEY, CA_CRT, CA_KEY):
            try:
                out[name] = (self.path / name).read_bytes()
            except FileNotFoundError:
                continue
        return out

    def read(self) -> CertFiles | None:
        return CertFiles.from_entries(self.read_entries())

    def write(self, files: CertFiles) -> bool:
        """Write what differs; True if any file changed."""
        self.path.mkdir(parents=True, exist_ok=True)
        entries = files.entries(include_ca_key=self.include_ca_key)
        current = self.read_entries()
        changed = False
        for name in (CA_CRT, CA_KEY, TLS_KEY, TLS_CRT):
            if name not in entries or current.get(name) == entries[name]:
                continue
            atomic_write(self.path / name, entries[name], private=name in PRIVATE)
            changed = True
        if changed:
            _fsync_dir(self.path)
        return changed

    def fingerprint(self) -> tuple[tuple[str, int, int, int], ...]:
        """Identity of the files as they are now (resolving symlinks), to notice replacements cheaply."""
        out = []
        for name in (TLS_CRT, TLS_KEY, CA_CRT):
            try:
                st = os.stat(self.path / name)
            except FileNotFoundError:
                out.append((name, -1, -1, -1))
                continue
            out.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class SecretsApi(Protocol):
    """The three CoreV1Api calls we need (kubernetes_asyncio.client.CoreV1Api satisfies it)."""

    def read_namespaced_secret(self, name: str, namespace: str) -> Any: ...

    def create_namespaced_secret(self, namespace: str, body: Any) -> Any: ...

    def replace_namespaced_secret(self, name: str, namespace: str, body: Any) -> Any: ...


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


@dataclass(frozen=True)
class SecretSnapshot:
    """What a read returned: the certificates (None if absent/empty) and what to pass back on write."""

    files: CertFiles | None
    exists: bool
    resource_version: str | None = None
    secret_type: str | None = None
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None


class SecretStore:
    """A `kubernetes.io/tls` Secret with keys tls.crt, tls.key, ca.crt (+ ca.key in auto mode).

    Writes use optimistic concurrency: create fails with AlreadyExists and replace with Conflict when
    another replica got there first; both surface as `StoreConflict` so the caller re-reads and adopts
    (or re-plans on top of) what the other replica wrote.
    """

    def __init__(self, api: SecretsApi, namespace: str, name: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name

    def __repr__(self) -> str:
        return f"SecretStore({self.namespace}/{self.name})"

    async def read(self) -> SecretSnapshot:
        try:
            secret = await self.api.read_namespaced_secret(self.name, self.namespace)
        except ApiException as err:
            if err.status == 404:
                return SecretSnapshot(files=None, exists=False)
            raise
        data = _field(secret, "data") or {}
        entries = {k: base64.b64decode(v or "") for k, v in data.items()}
        meta = _field(secret, "metadata")
        return SecretSnapshot(
            files=CertFiles.from_entries(entries),
            exists=True,
            resource_version=_field(meta, "resource_version") or _field(meta, "resourceVersion"),
            secret_type=_field(secret, "type"),
            labels=_field(meta, "labels"),
            annotations=_field(meta, "annotations"),
        )

    def body(self, files: CertFiles, previous: SecretSnapshot | None = None) -> dict[str, Any]:
        # Labels already there win: a Secret the chart made stays Helm's (app.kubernetes.io/managed-by: Helm),
        # or `helm upgrade` and `helm uninstall` would no longer take it for the release's.
        kept = {
            k: v
            for k, v in ((previous.labels if previous else None) or {}).items()
            if _FORMER_LABELS.get(k) != v
        }
        labels = {**SECRET_LABELS, **kept}
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "labels": labels}
        if previous is not None and previous.annotations:
            # Kept like the labels: e.g. Helm's release annotations on a Secret the chart made empty.
            metadata["annotations"] = dict(previous.annotations)
        if previous is not None and previous.resource_version:
            metadata["resourceVersion"] = previous.resource_version
        data = {k: base64.b64encode(v).decode() for k, v in files.entries().items()}
        secret_type = (previous.secret_type if previous and previous.exists else None) or SECRET_TYPE
        return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": secret_type, "data": data}

    async def write(self, files: CertFiles, previous: SecretSnapshot) -> None:
        """Create (if `previous` says it did not exist) or replace at `previous.resource_version`."""
        try:
            if previous.exists:
                await self.api.replace_namespaced_secret(
                    self.name, self.namespace, self.body(files, previous)
                )
            else:
                await self.api.create_namespaced_secret(self.namespace, self.body(files))
        except ApiException as err:
            if err.status == 409:
                raise StoreConflict(f"secret {self.namespace}/{self.name} changed concurrently") from err
            raise
