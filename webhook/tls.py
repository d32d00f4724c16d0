"""A server SSLContext whose certificate can be replaced while the listener keeps running.

`ReloadableTLS(cert_dir).context` is passed once to the TCP site. `reload()` reads tls.crt/tls.key as one
snapshot, checks that the key belongs to the certificate, builds a fresh context from it and

* makes the SNI callback hand that context to every new handshake (OpenSSL runs the callback for each
  ClientHello, with server_name None when the client sends no SNI), and
* loads the same snapshot into the listening context in place, so the listening context itself serves
  the new certificate too (for stacks that skip the callback; OpenSSL copies the certificate into each
  connection when it is created, so connections already open keep theirs and new ones get the new one).

Both mechanisms are tested on their own (tests/unit/test_webhook_server.py).

A failed reload (missing file, unparsable PEM, key that does not match) raises and leaves the served
certificate untouched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

log = logging.getLogger(__name__)

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
MIN_VERSION = ssl.TLSVersion.TLSv1_2


class TLSError(Exception):
    """The certificate/key pair cannot be loaded (the message names the files)."""


def _public_der(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_pair(cert_pem: bytes, key_pem: bytes) -> x509.Certificate:
    """Parse both and check the key is the certificate's; returns the (first) certificate."""
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
    except (ValueError, IndexError) as err:
        raise TLSError(f"certificate is not valid PEM: {err}") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise TLSError(f"private key is not an unencrypted PEM key: {err}") from None
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise TLSError("private key does not match the certificate")
    return cert


def read_pair(
    cert_path: Path, key_path: Path, *, attempts: int = 5, delay: float = 0.02
) -> tuple[bytes, bytes]:
    """Read a certificate and key that belong together.

    The files are replaced one at a time by writers (or all at once by the kubelet, between our two
    reads); a mismatch is read again a few times before giving up.
    """
    for attempt in range(attempts):
        try:
            cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
        except FileNotFoundError as err:
            raise TLSError(f"{err.filename} does not exist") from None
        try:
            check_pair(cert_pem, key_pem)
        except TLSError as err:
            if attempt + 1 == attempts:
                raise TLSError(f"{cert_path} / {key_path}: {err}") from None
            time.sleep(delay)
            continue
        return cert_pem, key_pem
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _pem_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can read `data` from: an anonymous in-memory file where available, else a 0600 temp file."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd = memfd_create("grove-webhook-tls", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="grove-webhook-tls-")
    try:
        os.write(fd, data)
        os.close(fd)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def new_server_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = MIN_VERSION
    ctx.options |= ssl.OP_NO_COMPRESSION
    return ctx


def _load(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    # One file holding both: OpenSSL loads the pair from the same snapshot and checks they match.
    with _pem_file(cert_pem.rstrip(b"\n") + b"\n" + key_pem) as path:
        ctx.load_cert_chain(path)


class ReloadableTLS:
    """Server TLS for `cert_dir` (tls.crt + tls.key); TLS 1.2 minimum; `reload()` without a restart."""

    def __init__(self, cert_dir: str | Path, *, cert_file: str = CERT_FILE, key_file: str = KEY_FILE) -> None:
        self.cert_path = Path(cert_dir) / cert_file
        self.key_path = Path(cert_dir) / key_file
        self._base = new_server_context()
        self._current = self._base
        self._loaded: tuple[bytes, bytes] = (b"", b"")
        self._certificate: x509.Certificate | None = None
        self._fingerprint: object = None
        self.reload()
        self._base.sni_callback = self._sni

    @property
    def context(self) -> ssl.SSLContext:
        """Give this to the server (aiohttp TCPSite `ssl_context=`); it stays the same object across reloads."""
        return self._base

    @property
    def certificate(self) -> x509.Certificate:
        assert self._certificate is not None
        return self._certificate

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    def _sni(
        self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
    ) -> None:
        current = self._current
        if current is not ctx:
            sslobj.context = current

    def _stat(self) -> object:
        out: list[tuple[int, int, int] | None] = []
        for path in (self.cert_path, self.key_path):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                out.append(None)
            else:
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def changed_on_disk(self) -> bool:
        """Cheap check (stat only) whether the files were replaced since the last load."""
        return self._stat() != self._fingerprint

    def reload(self) -> bool:
        """Load the files now; True if the served certificate changed. Raises TLSError and keeps the old one."""
        fingerprint = self._stat()
        cert_pem, key_pem = read_pair(self.cert_path, self.key_path)
        if (cert_pem, key_pem) == self._loaded:
            self._fingerprint = fingerprint
            return False
        cert = check_pair(cert_pem, key_pem)
        try:
            if self._certificate is None:  # first load: the listening context is all there is
                fresh = self._base
                _load(fresh, cert_pem, key_pem)
            else:  # a fresh context first (so a failure leaves everything as it was), then in place
                fresh = new_server_context()
                _load(fresh, cert_pem, key_pem)
                _load(self._base, cert_pem, key_pem)
        except ssl.SSLError as err:
            raise TLSError(f"{self.cert_path} / {self.key_path}: {err}") from None
        previous = self._certificate
        self._current = fresh
        self._loaded = (cert_pem, key_pem)
        self._certificate = cert
        self._fingerprint = fingerprint
        log.info(
            "serving certificate loaded",
            extra={
                "serial": format(cert.serial_number, "x"),
                "previous_serial": format(previous.serial_number, "x") if previous else None,
                "not_after": cert.not_valid_after_utc.isoformat(),
                "path": str(self.cert_path),
            },
        )
        return True

    def reload_if_changed(self) -> bool:
        """`reload()` if the files look replaced (by stat); True if the served certificate changed."""
        if not self.changed_on_disk():
            return False
        return self.reload()
