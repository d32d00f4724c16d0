"""The webhook's serving certificate: provisioned ("auto", self-signed like Grove) or user-provided ("manual").

auto
    A self-signed CA (CN "Grove-CA", O "Grove") signs a serving certificate whose SANs are the webhook
    Service's names (and `localhost`/`127.0.0.1` when the apiserver calls a URL). The set lives in a
    directory or in a `kubernetes.io/tls` Secret (mirrored into the directory the server reads). A valid
    existing set is reused; a background task renews what has less than 1/3 of its validity left.

manual
    tls.crt/tls.key (and ca.crt) come from the user, e.g. cert-manager; they are validated, never
    generated, and replacements of the files (or the Secret) are picked up by polling.

CA rotation without breaking clients
    The apiserver verifies us with the caBundle it was given, which is updated asynchronously (the
    `on_rotated` callback re-injects it). So a new CA is never used in the same step it is created:

    1. When the signing CA has less than 1/3 of its validity left, a successor CA is generated and
       *added* to the bundle: ca.crt = [new CA, old CA]; ca.key becomes the new CA's key. The serving
       certificate is left alone (or, if it is due too, renewed by the *old* CA in that same step).
       `on_rotated` injects the two-CA bundle.
    2. The serving certificate is next renewed at least one check later, by the new CA. Clients that
       hold either the previous or the current bundle trust it (the previous bundle trusts every
       certificate served up to this point, the current one trusts both CAs).
    3. The old CA stays in the bundle until it expires (harmless: nothing it signed outlives it).

    Hence a client whose bundle lags by at most one rotation (one `on_rotated`) never fails a handshake.
    A failed `on_rotated` is retried on every later check until it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from certs import pki
from certs.store import (
    CA_CRT,
    TLS_CRT,
    TLS_KEY,
    CertFiles,
    DirectoryStore,
    SecretsApi,
    SecretStore,
    StoreConflict,
)

if TYPE_CHECKING:
    from grove_api.operatorconfig import WebhookServer

log = logging.getLogger(__name__)

Mode = Literal["auto", "manual"]
RotatedCallback = Callable[[], Awaitable[None]]

DEFAULT_CA_VALIDITY = dt.timedelta(days=3650)
DEFAULT_CERT_VALIDITY = dt.timedelta(days=365)
MIN_VALIDITY = dt.timedelta(seconds=2)  # certificate times have one-second resolution
DEFAULT_CHECK_INTERVAL = 3600.0
DEFAULT_WATCH_INTERVAL = 10.0
RENEW_FRACTION = 1 / 3
CA_COMMON_NAME = "Grove-CA"
CA_ORGANIZATION = "Grove"
LOCAL_DNS_NAMES = ("localhost",)
LOCAL_IPS = ("127.0.0.1",)
_MAX_CN = 64  # X.509 upper bound for a common name


class CertError(Exception):
    """Certificates are missing, unreadable or unusable (the message says which and where)."""


class KeyMismatch(CertError):
    """tls.key is not the key of tls.crt (possibly a half-seen update: worth reading again)."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def service_dns_names(service: str, namespace: str) -> tuple[str, ...]:
    """The names the apiserver may use for a Service (Grove's SANs for `grove-operator`)."""
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    )


@dataclass(frozen=True)
class CertSpec:
    """What the auto-provisioned certificates must look like."""

    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...] = ()
    common_name: str = ""
    ca_validity: dt.timedelta = DEFAULT_CA_VALIDITY
    cert_validity: dt.timedelta = DEFAULT_CERT_VALIDITY
    renew_fraction: float = RENEW_FRACTION
    ca_common_name: str = CA_COMMON_NAME
    ca_organization: str = CA_ORGANIZATION

    @property
    def cn(self) -> str:
        for candidate in (self.common_name, *self.dns_names, *self.ip_addresses):
            if candidate and len(candidate) <= _MAX_CN:
                return candidate
        return "grove-webhook"


# ---------------------------------------------------------------------------------------------------------
# Pure decisions


def parse_certs(pem: bytes) -> list[x509.Certificate]:
    """All certificates in a PEM blob ([] for empty input); ValueError if it does not parse."""
    if not pem.strip():
        return []
    return x509.load_pem_x509_certificates(pem)


def _public_der(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches(cert: x509.Certificate, key_pem: bytes) -> bool:
    """Whether `key_pem` is the private key of `cert` (False if it does not parse)."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    return _public_der(key.public_key()) == _public_der(cert.public_key())


def san_names(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses) in the certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return set(san.get_values_for_type(x509.DNSName)), {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def missing_sans(
    cert: x509.Certificate, dns_names: Sequence[str], ip_addresses: Sequence[str] = ()
) -> list[str]:
    """Requested names the certificate does not cover (extra names in the certificate are fine)."""
    dns, ips = san_names(cert)
    missing = [d for d in dns_names if d not in dns]
    missing += [ip for ip in ip_addresses if str(ipaddress.ip_address(ip)) not in ips]
    return missing


def lifetime(cert: x509.Certificate, validity: dt.timedelta) -> dt.timedelta:
    """The validity span renewal is measured against.

    The certificate's own span, capped at the configured validity (`certs.pki` back-dates notBefore by a
    few minutes for clock skew, which would otherwise dominate the second-long validities used in tests).
    A serving certificate cut short by its CA's expiry has a shorter span, and is renewed proportionally.
    """
    return min(cert.not_valid_after_utc - cert.not_valid_before_utc, validity)


def renew_at(
    cert: x509.Certificate, *, validity: dt.timedelta, fraction: float = RENEW_FRACTION
) -> dt.datetime:
    return cert.not_valid_after_utc - lifetime(cert, validity) * fraction


def needs_renewal(
    cert: x509.Certificate, *, validity: dt.timedelta, now: dt.datetime, fraction: float = RENEW_FRACTION
) -> bool:
    """True when less than `fraction` (1/3) of the certificate's validity remains (or it has expired)."""
    return now >= renew_at(cert, validity=validity, fraction=fraction)


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def serving_problems(
    tls_crt: bytes, tls_key: bytes, cas: Sequence[x509.Certificate], spec: CertSpec, now: dt.datetime
) -> list[str]:
    """Why the serving certificate cannot be kept ([] = reuse it)."""
    try:
        certs = parse_certs(tls_crt)
    except ValueError:
        return ["tls.crt does not parse"]
    if not certs:
        return ["tls.crt is missing"]
    cert = certs[0]
    problems = []
    if not key_matches(cert, tls_key):
        problems.append("tls.key does not match tls.crt")
    if not any(issued_by(cert, ca) for ca in cas):
        problems.append("not signed by a CA in ca.crt")
    if now >= cert.not_valid_after_utc:
        problems.append(f"expired at {cert.not_valid_after_utc.isoformat()}")
    elif needs_renewal(cert, validity=spec.cert_validity, now=now, fraction=spec.renew_fraction):
        problems.append(
            f"expires at {cert.not_valid_after_utc.isoformat()} (less than 1/3 of its validity left)"
        )
    missing = missing_sans(cert, spec.dns_names, spec.ip_addresses)
    if missing:
        problems.append(f"SANs missing {', '.join(missing)}")
    return problems


def _signer(cas: Sequence[x509.Certificate], ca_key: bytes) -> x509.Certificate | None:
    """The CA in the bundle whose key we hold (the one that signs new serving certificates)."""
    if not ca_key.strip():
        return None
    for ca in cas:
        if key_matches(ca, ca_key):
            return ca
    return None


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Plan:
    """The certificate set to store, and why it differs from the current one (no reasons = unchanged)."""

    files: CertFiles
    reasons: tuple[str, ...] = ()
    ca_renewed: bool = False
    cert_renewed: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


def _new_ca(spec: CertSpec) -> pki.KeyPair:
    return pki.new_ca(spec.ca_common_name, organization=spec.ca_organization, valid_for=spec.ca_validity)


def _issue(ca: pki.KeyPair, spec: CertSpec) -> pki.KeyPair:
    return pki.issue(
        ca,
        spec.cn,
        valid_for=spec.cert_validity,
        dns_names=spec.dns_names,
        ip_addresses=spec.ip_addresses,
        server=True,
    )


def plan(files: CertFiles | None, spec: CertSpec, now: dt.datetime) -> Plan:
    """Decide what to keep, renew or create (auto mode). Generates keys when needed; no I/O."""
    try:
        cas = parse_certs(files.ca_crt) if files else []
    except ValueError:
        cas = []
    signer = _signer(cas, files.ca_key) if files else None
    if files is None or signer is None or now >= signer.not_valid_after_utc:
        if files is None:
            reason = "no certificates yet"
        elif signer is None:
            reason = "no CA key matching a CA in ca.crt"
        else:
            reason = "the CA has expired"
        ca = _new_ca(spec)
        leaf = _issue(ca, spec)
        return Plan(
            CertFiles(leaf.cert_pem, leaf.key_pem, ca.cert_pem, ca.key_pem),
            reasons=(f"new CA and serving certificate: {reason}",),
            ca_renewed=True,
            cert_renewed=True,
        )

    reasons: list[str] = []
    bundle = [ca for ca in cas if now < ca.not_valid_after_utc]
    if len(bundle) != len(cas):
        reasons.append(f"dropped {len(cas) - len(bundle)} expired CA(s) from ca.crt")
    tls_crt, tls_key, ca_key = files.tls_crt, files.tls_key, files.ca_key

    problems = serving_problems(tls_crt, tls_key, bundle, spec, now)
    if problems:
        # Signed by the CA that was already in the stored (hence injected) bundle, never by a CA created below.
        leaf = _issue(pki.KeyPair(_pem(signer), ca_key), spec)
        tls_crt, tls_key = leaf.cert_pem, leaf.key_pem
        reasons.append(f"new serving certificate: {'; '.join(problems)}")

    ca_renewed = needs_renewal(signer, validity=spec.ca_validity, now=now, fraction=spec.renew_fraction)
    if ca_renewed:
        successor = _new_ca(spec)
        bundle.insert(0, successor.certificate)
        ca_key = successor.key_pem
        reasons.append(
            f"new CA (the old one expires at {signer.not_valid_after_utc.isoformat()}); "
            "both stay in ca.crt, serving certificates move to the new CA at their next renewal"
        )

    if not reasons:
        return Plan(files)
    ca_crt = b"".join(_pem(ca) for ca in bundle)
    return Plan(
        CertFiles(tls_crt, tls_key, ca_crt, ca_key),
        reasons=tuple(reasons),
        ca_renewed=ca_renewed,
        cert_renewed=bool(problems),
    )


def validate_manual(
    files: CertFiles | None, where: str, spec: CertSpec | None, now: dt.datetime
) -> list[str]:
    """Check user-provided certificates; raise CertError if unusable, return warnings otherwise."""
    files = files or CertFiles(b"", b"")
    missing = [
        name for name, data in ((TLS_CRT, files.tls_crt), (TLS_KEY, files.tls_key)) if not data.strip()
    ]
    if missing:
        raise CertError(
            f"manual certificate mode: {where} has no {' or '.join(missing)}; provide tls.crt and tls.key "
            "(and ca.crt), e.g. from cert-manager, or use certProvisionMode: auto"
        )
    try:
        certs = parse_certs(files.tls_crt)
    except ValueError as err:
        raise CertError(
            f"manual certificate mode: {where}: tls.crt is not a PEM certificate: {err}"
        ) from None
    if not certs:
        raise CertError(f"manual certificate mode: {where}: tls.crt holds no certificate")
    cert = certs[0]
    try:
        serialization.load_pem_private_key(files.tls_key, password=None)
    except (ValueError, TypeError) as err:
        raise CertError(
            f"manual certificate mode: {where}: tls.key is not an unencrypted PEM key: {err}"
        ) from None
    if not key_matches(cert, files.tls_key):
        raise KeyMismatch(f"manual certificate mode: {where}: tls.key does not match tls.crt")
    if now >= cert.not_valid_after_utc:
        raise CertError(
            f"manual certificate mode: {where}: tls.crt expired at {cert.not_valid_after_utc.isoformat()}"
        )
    warnings = []
    try:
        cas = parse_certs(files.ca_crt)
    except ValueError as err:
        raise CertError(f"manual certificate mode: {where}: ca.crt is not PEM: {err}") from None
    if not cas:
        warnings.append(f"{where} has no ca.crt: the caBundle must be configured some other way")
    if spec is not None:
        names = missing_sans(cert, spec.dns_names, spec.ip_addresses)
        if names:
            warnings.append(f"{where}: tls.crt does not cover {', '.join(names)}")
    return warnings


# ---------------------------------------------------------------------------------------------------------
# The manager


@dataclass
class _State:
    files: CertFiles | None = None
    fingerprint: object = None
    notify_pending: bool = False


class CertManager:
    """Provision (auto) or load (manual) the serving certificate into `cert_dir`, and keep it fresh.

    Call `ensure()` (or `start()`) before starting the server; `cert_dir` then holds tls.crt/tls.key/ca.crt.
    After that, `on_rotated` is awaited whenever the files changed (reload TLS, re-inject `ca_bundle()`).
    """

    def __init__(
        self,
        cert_dir: str | Path,
        *,
        mode: Mode = "auto",
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        common_name: str = "",
        secret: SecretStore | None = None,
        ca_validity: dt.timedelta = DEFAULT_CA_VALIDITY,
        cert_validity: dt.timedelta = DEFAULT_CERT_VALIDITY,
        renew_fraction: float = RENEW_FRACTION,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        on_rotated: RotatedCallback | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        if mode not in ("auto", "manual"):
            raise CertError(f"unsupported cert provision mode: {mode!r}")
        if mode == "auto" and not dns_names and not ip_addresses:
            raise ValueError(
                "auto mode needs at least one DNS name or IP address for the serving certificate"
            )
        if not 0 < renew_fraction < 1:
            raise ValueError("renew_fraction must be between 0 and 1")
        if cert_validity < MIN_VALIDITY or ca_validity < cert_validity:
            # X.509 times have a resolution of one second: shorter validities cannot be honoured.
            raise ValueError(
                f"need {MIN_VALIDITY.total_seconds():g}s <= cert_validity <= ca_validity, got "
                f"cert_validity={cert_validity}, ca_validity={ca_validity}"
            )
        self.mode: Mode = mode
        self.spec = CertSpec(
            dns_names=tuple(dns_names),
            ip_addresses=tuple(ip_addresses),
            common_name=common_name,
            ca_validity=ca_validity,
            cert_validity=cert_validity,
            renew_fraction=renew_fraction,
        )
        # With a Secret as the source of truth the directory is only a mirror: no CA key on disk.
        self.dir = DirectoryStore(cert_dir, include_ca_key=secret is None)
        self.secret = secret
        self.check_interval = check_interval
        self.watch_interval = watch_interval
        self.on_rotated = on_rotated
        self.clock = clock
        self._state = _State()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(
        cls,
        config: WebhookServer,
        *,
        secrets_api: SecretsApi | None = None,
        on_rotated: RotatedCallback | None = None,
        **kwargs: object,
    ) -> CertManager:
        """From OperatorConfiguration `server.webhooks`; with `secrets_api` the Secret `secretName` is used."""
        dns = list(service_dns_names(config.service_name, config.namespace))
        ips: list[str] = []
        if config.mode == "url":
            dns += LOCAL_DNS_NAMES
            ips += LOCAL_IPS
            host = config.host
            try:
                addr = ipaddress.ip_address(host)
            except ValueError:
                if host and host not in dns:
                    dns.append(host)
            else:
                if not addr.is_unspecified and str(addr) not in ips:
                    ips.append(str(addr))
        secret = SecretStore(secrets_api, config.namespace, config.secret_name) if secrets_api else None
        return cls(
            config.server_cert_dir,
            mode=config.cert_provision_mode,
            dns_names=dns,
            ip_addresses=ips,
            common_name=f"{config.service_name}.{config.namespace}.svc",
            secret=secret,
            on_rotated=on_rotated,
            **kwargs,  # type: ignore[arg-type]
        )

    # -- state -------------------------------------------------------------------------------------------

    @property
    def cert_dir(self) -> Path:
        return self.dir.path

    @property
    def ready(self) -> bool:
        """True once the certificates are in `cert_dir`."""
        return self._state.files is not None

    @property
    def files(self) -> CertFiles:
        if self._state.files is None:
            raise CertError("certificates are not provisioned yet (call ensure() first)")
        return self._state.files

    def ca_bundle(self) -> bytes:
        """PEM CA bundle for webhook configurations' caBundle (base64 it for the API object)."""
        return self.files.ca_crt

    def serving_certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.files.tls_crt)

    def _where(self) -> str:
        return repr(self.secret) if self.secret else f"directory {self.dir.path}"

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def ensure(self) -> None:
        """Provision or validate once; raises CertError (manual mode) with a message naming what is wrong."""
        async with self._lock:
            if self.mode == "auto":
                await self._sync_auto()
            else:
                await self._refresh_manual(initial=True)

    async def check(self) -> bool:
        """One periodic step: renew / pick up changes; awaits `on_rotated` if anything changed."""
        async with self._lock:
            if self.mode == "auto":
                changed = await self._sync_auto()
            else:
                changed = await self._refresh_manual(initial=False)
        if changed or self._state.notify_pending:
            await self._notify()
        return changed

    async def start(self) -> None:
        """`ensure()` (if not done yet), then check in the background until `stop()`."""
        if not self.ready:
            await self.ensure()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"cert-manager {self.dir.path}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> CertManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        interval = self.check_interval if self.mode == "auto" else self.watch_interval
        while True:
            delay = min(interval, 10.0) if self._state.notify_pending else interval
            await asyncio.sleep(delay)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.error(
                    "certificate check failed; keeping the current certificates",
                    extra={"error": f"{type(err).__name__}: {err}", "where": self._where()},
                    exc_info=not isinstance(err, CertError),
                )

    async def _notify(self) -> None:
        self._state.notify_pending = False
        if self.on_rotated is None:
            return
        try:
            await self.on_rotated()
        except Exception as err:
            self._state.notify_pending = True
            log.error(
                "on_rotated callback failed; will retry",
                extra={"error": f"{type(err).__name__}: {err}"},
                exc_info=True,
            )

    # -- auto --------------------------------------------------------------------------------------------

    async def _sync_auto(self) -> bool:
        for _ in range(5):
            if self.secret is not None:
                snapshot = await self.secret.read()
                current = snapshot.files
            else:
                current = self.dir.read()
            decision = plan(current, self.spec, self.clock())
            if decision.changed and self.secret is not None:
                try:
                    await self.secret.write(decision.files, snapshot)
                except StoreConflict as err:
                    log.info("certificate secret changed concurrently; re-reading", extra={"error": str(err)})
                    continue
            break
        else:
            raise CertError(f"{self._where()}: gave up after repeated concurrent updates")
        if decision.changed:
            log.info(
                "webhook certificates updated",
                extra={
                    "where": self._where(),
                    "reasons": list(decision.reasons),
                    "serial": _serial(decision.files.tls_crt),
                },
            )
        self.dir.write(decision.files)  # the store itself, or the Secret's mirror for the server
        changed = decision.files != self._state.files
        self._state.files = decision.files
        return changed

    # -- manual ------------------------------------------------------------------------------------------

    async def _refresh_manual(self, *, initial: bool) -> bool:
        fingerprint: object
        if self.secret is not None:
            snapshot = await self.secret.read()
            if not snapshot.exists:
                raise CertError(
                    f"manual certificate mode: {self._where()} not found; create it with tls.crt, tls.key and ca.crt"
                )
            files = snapshot.files
            fingerprint = snapshot.resource_version
        else:
            fingerprint = self.dir.fingerprint()
            if not initial and fingerprint == self._state.fingerprint:
                return False  # nothing replaced since the last load (stat only; no key read)
            files = self.dir.read()
        if not initial and fingerprint is not None and fingerprint == self._state.fingerprint:
            return False
        attempts = 3 if initial and self.secret is None else 1
        for attempt in range(attempts):
            try:
                warnings = validate_manual(files, self._where(), self.spec, self.clock())
                break
            except KeyMismatch:
                # A kubelet/cert-manager update may be half-visible (new cert, old key): read again.
                if attempt + 1 == attempts:
                    raise
                await asyncio.sleep(0.2)
                fingerprint = self.dir.fingerprint()
                files = self.dir.read()
        for warning in warnings:
            log.warning("manual webhook certificate: %s", warning, extra={"where": self._where()})
        assert files is not None
        if self.secret is not None:
            self.dir.write(files)
        changed = files != self._state.files
        self._state.files = files
        self._state.fingerprint = fingerprint
        if changed and not initial:
            log.info(
                "user-provided webhook certificate changed",
                extra={"where": self._where(), "serial": _serial(files.tls_crt)},
            )
        return changed


def _serial(pem: bytes) -> str:
    try:
        return format(x509.load_pem_x509_certificate(pem).serial_number, "x")
    except ValueError:
        return "?"


__all__ = [
    "CA_COMMON_NAME",
    "CA_CRT",
    "CA_ORGANIZATION",
    "LOCAL_DNS_NAMES",
    "LOCAL_IPS",
    "CertError",
    "CertFiles",
    "CertManager",
    "CertSpec",
    "KeyMismatch",
    "Plan",
    "lifetime",
    "missing_sans",
    "needs_renewal",
    "plan",
    "service_dns_names",
    "serving_problems",
    "validate_manual",
]
