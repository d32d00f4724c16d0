"""Webhook certificates: SANs, reuse-vs-renew decisions, CA rotation, stores, manual mode."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes_asyncio.client import V1ObjectMeta, V1Secret
from kubernetes_asyncio.client.exceptions import ApiException

from certs import pki
from certs.manager import (
    CertError,
    CertManager,
    CertSpec,
    lifetime,
    missing_sans,
    needs_renewal,
    plan,
    san_names,
    service_dns_names,
    serving_problems,
)
from certs.store import SECRET_LABELS, SECRET_TYPE, CertFiles, DirectoryStore, SecretStore
from grove_api.operatorconfig import WebhookServer

LOCAL = CertSpec(dns_names=("localhost",), ip_addresses=("127.0.0.1",))
DAY = dt.timedelta(days=1)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def leaf(files: CertFiles) -> x509.Certificate:
    return x509.load_pem_x509_certificate(files.tls_crt)


def cas(files: CertFiles) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(files.ca_crt)


def verifies(tls_crt: bytes, bundle: bytes, at: dt.datetime, name: str = "localhost") -> bool:
    """Full chain + SAN + validity check of a served certificate against a client's CA bundle."""
    store = verification.Store(x509.load_pem_x509_certificates(bundle))
    verifier = verification.PolicyBuilder().store(store).time(at).build_server_verifier(x509.DNSName(name))
    try:
        verifier.verify(x509.load_pem_x509_certificate(tls_crt), [])
    except verification.VerificationError:
        return False
    return True


class Clock:
    """A settable clock shared by the manager and `certs.pki` (so generated certificates agree with it)."""

    def __init__(self) -> None:
        self.now = now()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(pki, "_now", c)
    return c


# --- SANs and names -----------------------------------------------------------------------------------


def test_service_sans_match_grove() -> None:
    assert service_dns_names("grove-operator", "grove-system") == (
        "grove-operator",
        "grove-operator.grove-system",
        "grove-operator.grove-system.svc",
        "grove-operator.grove-system.svc.cluster.local",
    )


def test_auto_ca_and_serving_certificate_shape() -> None:
    spec = CertSpec(
        dns_names=service_dns_names("grove-operator", "ns1"), common_name="grove-operator.ns1.svc"
    )
    files = plan(None, spec, now()).files
    (ca,) = cas(files)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Grove-CA"
    assert ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Grove"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert = leaf(files)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "grove-operator.ns1.svc"
    assert san_names(cert) == (set(spec.dns_names), set())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert verifies(files.tls_crt, files.ca_crt, now(), "grove-operator.ns1.svc.cluster.local")
    assert not verifies(files.tls_crt, files.ca_crt, now(), "grove-operator.other.svc")
    assert not verifies(files.tls_crt, plan(None, spec, now()).files.ca_crt, now(), "grove-operator.ns1.svc")
    assert CertFiles.from_entries({"tls.key": files.tls_key}) is not None  # key alone still counts


def test_from_config_service_and_url_modes(tmp_path: Path) -> None:
    service = CertManager.from_config(WebhookServer(server_cert_dir=str(tmp_path), namespace="ns1"))
    assert service.spec.dns_names == service_dns_names("grove-operator", "ns1")
    assert service.spec.ip_addresses == ()
    assert service.spec.common_name == "grove-operator.ns1.svc"
    assert service.secret is None and service.mode == "auto"

    url = CertManager.from_config(
        WebhookServer(server_cert_dir=str(tmp_path), namespace="ns1", mode="url", host="10.1.2.3")
    )
    assert "localhost" in url.spec.dns_names
    assert set(service_dns_names("grove-operator", "ns1")) <= set(url.spec.dns_names)
    assert url.spec.ip_addresses == ("127.0.0.1", "10.1.2.3")

    manual = CertManager.from_config(
        WebhookServer(server_cert_dir=str(tmp_path), cert_provision_mode="manual"), secrets_api=FakeSecrets()
    )
    assert manual.mode == "manual"
    assert manual.secret is not None and manual.secret.name == "grove-webhook-server-cert"


def test_unsupported_mode_and_missing_names(tmp_path: Path) -> None:
    with pytest.raises(CertError, match="unsupported cert provision mode: 'magic'"):
        CertManager(tmp_path, mode="magic", dns_names=["x"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="DNS name or IP"):
        CertManager(tmp_path, mode="auto")


def test_missing_sans_reports_names_and_ips() -> None:
    cert = leaf(plan(None, LOCAL, now()).files)
    assert missing_sans(cert, ["localhost"], ["127.0.0.1"]) == []
    assert missing_sans(cert, ["localhost", "other.example"], ["::1"]) == ["other.example", "::1"]


# --- renewal decisions (pure) -------------------------------------------------------------------------


def test_needs_renewal_at_one_third_of_validity() -> None:
    validity = dt.timedelta(days=90)
    ca = pki.new_ca("ca", valid_for=10 * validity)
    cert = pki.issue(ca, "x", valid_for=validity, dns_names=("x",)).certificate
    end = cert.not_valid_after_utc
    second = dt.timedelta(seconds=1)
    assert not needs_renewal(cert, validity=validity, now=cert.not_valid_before_utc)
    assert not needs_renewal(cert, validity=validity, now=end - validity / 3 - second)
    assert needs_renewal(cert, validity=validity, now=end - validity / 3 + second)
    assert needs_renewal(cert, validity=validity, now=end + DAY)  # expired
    assert needs_renewal(cert, validity=validity, now=end - 20 * DAY, fraction=0.25)
    assert not needs_renewal(cert, validity=validity, now=end - 25 * DAY, fraction=0.25)


def test_lifetime_is_capped_by_configured_validity() -> None:
    # pki back-dates notBefore by 5 minutes; a 3-second certificate must still count as 3 seconds long.
    ca = pki.new_ca("ca", valid_for=DAY)
    short = pki.issue(ca, "x", valid_for=dt.timedelta(seconds=3)).certificate
    assert lifetime(short, dt.timedelta(seconds=3)) == dt.timedelta(seconds=3)
    # A certificate cut short by its CA's expiry is measured by its own (shorter) span.
    capped = pki.issue(ca, "x", valid_for=10 * DAY).certificate
    assert lifetime(capped, 10 * DAY) == capped.not_valid_after_utc - capped.not_valid_before_utc


def test_reuse_a_valid_certificate() -> None:
    first = plan(None, LOCAL, now())
    assert first.changed and first.ca_renewed and first.cert_renewed
    again = plan(first.files, LOCAL, now())
    assert not again.changed
    assert again.files is first.files


def test_renew_serving_cert_for_new_sans_keeps_ca() -> None:
    files = plan(None, LOCAL, now()).files
    wider = CertSpec(dns_names=("localhost", "grove-operator.ns.svc"), ip_addresses=("127.0.0.1",))
    assert serving_problems(files.tls_crt, files.tls_key, cas(files), wider, now()) == [
        "SANs missing grove-operator.ns.svc"
    ]
    renewed = plan(files, wider, now())
    assert renewed.cert_renewed and not renewed.ca_renewed
    assert renewed.files.ca_crt == files.ca_crt and renewed.files.ca_key == files.ca_key
    assert "grove-operator.ns.svc" in san_names(leaf(renewed.files))[0]
    # Extra SANs in an existing certificate are fine.
    assert not plan(renewed.files, LOCAL, now()).changed


def test_renew_on_mismatched_key_foreign_issuer_or_missing_ca_key() -> None:
    files = plan(None, LOCAL, now()).files
    other = plan(None, LOCAL, now()).files
    mismatched = CertFiles(files.tls_crt, other.tls_key, files.ca_crt, files.ca_key)
    result = plan(mismatched, LOCAL, now())
    assert result.cert_renewed and not result.ca_renewed
    assert any("tls.key does not match" in r for r in result.reasons)

    foreign = CertFiles(other.tls_crt, other.tls_key, files.ca_crt, files.ca_key)
    result = plan(foreign, LOCAL, now())
    assert any("not signed by a CA in ca.crt" in r for r in result.reasons)
    assert verifies(result.files.tls_crt, files.ca_crt, now())

    no_ca_key = CertFiles(files.tls_crt, files.tls_key, files.ca_crt, b"")
    result = plan(no_ca_key, LOCAL, now())
    assert result.ca_renewed and result.reasons == (
        "new CA and serving certificate: no CA key matching a CA in ca.crt",
    )


def test_renewal_when_serving_cert_nears_expiry(clock: Clock) -> None:
    spec = CertSpec(dns_names=("localhost",), cert_validity=30 * DAY, ca_validity=3650 * DAY)
    files = plan(None, spec, clock()).files
    clock.advance(19 * DAY)
    assert not plan(files, spec, clock()).changed
    clock.advance(2 * DAY)  # 9 days left < 10
    renewed = plan(files, spec, clock())
    assert renewed.cert_renewed and not renewed.ca_renewed
    assert leaf(renewed.files).not_valid_after_utc > leaf(files).not_valid_after_utc
    clock.advance(400 * DAY)  # long downtime: the certificate has expired, the CA has not
    result = plan(renewed.files, spec, clock())
    assert any("expired at" in r for r in result.reasons) and not result.ca_renewed


def test_ca_rotation_keeps_old_ca_until_serving_cert_moves(clock: Clock) -> None:
    """Step by step: new CA joins the bundle first; the serving certificate moves over one check later."""
    spec = CertSpec(dns_names=("localhost",), ca_validity=30 * DAY, cert_validity=10 * DAY)
    files = plan(None, spec, clock()).files
    (ca1,) = cas(files)
    clock.advance(20 * DAY + dt.timedelta(hours=1))  # CA has < 10 days left; serving cert is also due
    step = plan(files, spec, clock())
    assert step.ca_renewed and step.cert_renewed
    ca2, old = cas(step.files)
    assert old == ca1 and ca2 != ca1
    # The serving certificate of this step is still signed by the old CA: an old-bundle client trusts it.
    assert leaf(step.files).issuer == ca1.subject
    assert verifies(step.files.tls_crt, files.ca_crt, clock())
    assert verifies(step.files.tls_crt, step.files.ca_crt, clock())
    assert leaf(step.files).not_valid_after_utc <= ca1.not_valid_after_utc

    clock.advance(7 * DAY)  # the (CA-capped) serving cert is due again: now the new CA signs it
    step2 = plan(step.files, spec, clock())
    assert step2.cert_renewed and not step2.ca_renewed
    assert leaf(step2.files).issuer == ca2.subject
    assert verifies(step2.files.tls_crt, step.files.ca_crt, clock())  # the bundle injected one step ago
    assert cas(step2.files) == [ca2, ca1]

    clock.advance(4 * DAY)  # the old CA expired: dropped from the bundle
    step3 = plan(step2.files, spec, clock())
    assert cas(step3.files) == [ca2]
    assert any("expired CA" in r for r in step3.reasons)


async def test_every_served_certificate_is_trusted_by_the_previous_bundle(
    clock: Clock, tmp_path: Path
) -> None:
    """Over many CA and serving-cert rotations, a client one `on_rotated` behind never fails."""
    bundles: list[bytes] = []
    manager = CertManager(
        tmp_path,
        dns_names=["localhost"],
        ca_validity=30 * DAY,
        cert_validity=10 * DAY,
        clock=clock,
    )

    async def on_rotated() -> None:
        bundles.append(manager.ca_bundle())

    manager.on_rotated = on_rotated
    await manager.ensure()
    bundles.append(manager.ca_bundle())
    ca_rotations = 0
    for _ in range(200):  # 200 half-day checks = 100 days: 3+ CA rotations, ~15 serving-cert rotations
        clock.advance(DAY / 2)
        before = len(cas(manager.files))
        if await manager.check():
            ca_rotations += len(cas(manager.files)) > before
        served = manager.files.tls_crt
        assert verifies(served, bundles[-1], clock())
        if len(bundles) > 1:
            assert verifies(served, bundles[-2], clock()), "a client one rotation behind would fail"
    assert ca_rotations >= 3
    assert len(bundles) > 15
    assert all(len(x509.load_pem_x509_certificates(b)) <= 2 for b in bundles)


# --- directory store ----------------------------------------------------------------------------------


def test_directory_store_round_trip(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "certs")
    assert store.read() is None
    files = plan(None, LOCAL, now()).files
    assert store.write(files)
    assert store.read() == files
    assert sorted(p.name for p in store.path.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    for name, private in (("tls.key", True), ("ca.key", True), ("tls.crt", False), ("ca.crt", False)):
        mode = stat.S_IMODE(os.stat(store.path / name).st_mode)
        assert (mode & 0o077 == 0) if private else (mode == 0o644), (name, oct(mode))
    before = store.fingerprint()
    assert not store.write(files)  # unchanged: nothing rewritten
    assert store.fingerprint() == before
    renewed = CertFiles(*plan(None, LOCAL, now()).files.entries().values())
    assert store.write(renewed)
    assert store.fingerprint() != before
    assert store.read() == renewed


def test_directory_mirror_without_ca_key(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, include_ca_key=False)
    files = plan(None, LOCAL, now()).files
    store.write(files)
    assert not (tmp_path / "ca.key").exists()
    assert store.read() == CertFiles(files.tls_crt, files.tls_key, files.ca_crt)


async def test_auto_mode_reuses_certificates_across_restarts(tmp_path: Path) -> None:
    first = CertManager(tmp_path, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    await first.ensure()
    serial = first.serving_certificate().serial_number
    second = CertManager(tmp_path, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    await second.ensure()
    assert second.serving_certificate().serial_number == serial
    assert second.ca_bundle() == first.ca_bundle() == (tmp_path / "ca.crt").read_bytes()
    assert not await second.check()
    # A new SAN renews the serving certificate with the same CA.
    third = CertManager(tmp_path, dns_names=["localhost", "webhook.example"], ip_addresses=["127.0.0.1"])
    await third.ensure()
    assert third.serving_certificate().serial_number != serial
    assert third.ca_bundle() == first.ca_bundle()


async def test_on_rotated_failure_is_retried(clock: Clock, tmp_path: Path) -> None:
    calls: list[int] = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("apiserver unavailable")

    manager = CertManager(
        tmp_path, dns_names=["localhost"], cert_validity=3 * DAY, on_rotated=flaky, clock=clock
    )
    await manager.ensure()
    clock.advance(2.5 * DAY)
    assert await manager.check()  # renewed; the callback failed
    assert len(calls) == 1
    assert not await manager.check()  # nothing new, but the failed notification is retried
    assert len(calls) == 2
    assert not await manager.check()
    assert len(calls) == 2


async def test_background_rotation_task(tmp_path: Path) -> None:
    rotated: list[int] = []

    async def on_rotated() -> None:
        rotated.append(manager.serving_certificate().serial_number)

    manager = CertManager(
        tmp_path,
        dns_names=["localhost"],
        ca_validity=dt.timedelta(seconds=60),
        cert_validity=dt.timedelta(seconds=2),
        check_interval=0.02,
        on_rotated=on_rotated,
    )
    async with manager:
        first = manager.serving_certificate().serial_number
        for _ in range(250):
            if rotated:
                break
            await asyncio.sleep(0.02)
    assert rotated and first not in rotated
    assert leaf(DirectoryStore(tmp_path).read() or manager.files).serial_number == rotated[-1]
    assert manager._task is None  # stopped


def test_validity_bounds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cert_validity <= ca_validity"):
        CertManager(tmp_path, dns_names=["x"], cert_validity=dt.timedelta(seconds=1))
    with pytest.raises(ValueError, match="cert_validity <= ca_validity"):
        CertManager(tmp_path, dns_names=["x"], ca_validity=DAY, cert_validity=2 * DAY)


# --- manual mode --------------------------------------------------------------------------------------


def write_files(directory: Path, **files: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name.replace("_", ".")).write_bytes(data)


async def test_manual_mode_missing_files_is_a_clear_error(tmp_path: Path) -> None:
    manager = CertManager(tmp_path / "certs", mode="manual")
    with pytest.raises(CertError) as err:
        await manager.ensure()
    message = str(err.value)
    assert "manual certificate mode" in message and str(tmp_path / "certs") in message
    assert "tls.crt or tls.key" in message
    assert not (tmp_path / "certs").exists()  # never generates anything
    assert not manager.ready

    good = plan(None, LOCAL, now()).files
    write_files(tmp_path / "certs", tls_crt=good.tls_crt)
    with pytest.raises(CertError, match=r"has no tls\.key"):
        await manager.ensure()
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == ["tls.crt"]


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (
            lambda f: {"tls_crt": b"not a certificate", "tls_key": f.tls_key},
            "tls.crt is not a PEM certificate",
        ),
        (lambda f: {"tls_crt": f.tls_crt, "tls_key": b"junk"}, "tls.key is not an unencrypted PEM key"),
        (
            lambda f: {"tls_crt": f.tls_crt, "tls_key": plan(None, LOCAL, now()).files.tls_key},
            "tls.key does not match tls.crt",
        ),
        (lambda f: {"tls_crt": f.tls_crt, "tls_key": f.tls_key, "ca_crt": b"junk"}, "ca.crt is not PEM"),
    ],
)
async def test_manual_mode_unusable_files(
    tmp_path: Path, mutate: Callable[[CertFiles], dict[str, bytes]], error: str
) -> None:
    write_files(tmp_path, **mutate(plan(None, LOCAL, now()).files))
    with pytest.raises(CertError, match=error.replace(".", r"\.")):
        await CertManager(tmp_path, mode="manual").ensure()


async def test_manual_mode_expired_certificate(clock: Clock, tmp_path: Path) -> None:
    files = plan(None, LOCAL, clock()).files
    write_files(tmp_path, tls_crt=files.tls_crt, tls_key=files.tls_key)
    clock.advance(400 * DAY)
    with pytest.raises(CertError, match="expired at"):
        await CertManager(tmp_path, mode="manual", clock=clock).ensure()


async def test_manual_mode_loads_and_picks_up_replacements(tmp_path: Path) -> None:
    first = plan(None, LOCAL, now()).files
    write_files(tmp_path, tls_crt=first.tls_crt, tls_key=first.tls_key, ca_crt=first.ca_crt)
    rotated: list[bytes] = []

    async def on_rotated() -> None:
        rotated.append(manager.files.tls_crt)

    manager = CertManager(tmp_path, mode="manual", dns_names=["localhost"], on_rotated=on_rotated)
    await manager.ensure()
    assert manager.ca_bundle() == first.ca_crt
    assert not await manager.check()
    assert rotated == []

    # cert-manager style: new files appear (kubelet swaps them all at once).
    second = plan(None, LOCAL, now()).files
    write_files(tmp_path, tls_crt=second.tls_crt, tls_key=second.tls_key, ca_crt=second.ca_crt)
    assert await manager.check()
    assert rotated == [second.tls_crt]
    assert manager.ca_bundle() == second.ca_crt
    assert not (tmp_path / "ca.key").exists()

    # A broken update is reported and the previous certificate stays in use.
    write_files(tmp_path, tls_key=b"garbage")
    with pytest.raises(CertError):
        await manager.check()
    assert manager.files.tls_crt == second.tls_crt


async def test_manual_mode_without_ca_crt_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = plan(None, LOCAL, now()).files
    write_files(tmp_path, tls_crt=files.tls_crt, tls_key=files.tls_key)
    manager = CertManager(tmp_path, mode="manual", dns_names=["localhost", "elsewhere"])
    await manager.ensure()
    assert manager.ca_bundle() == b""
    assert "has no ca.crt" in caplog.text
    assert "does not cover elsewhere" in caplog.text


# --- Secret store -------------------------------------------------------------------------------------


class FakeSecrets:
    """The three CoreV1Api calls, with resourceVersion conflicts like the apiserver's."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 0
        self.writes = 0
        self.before_write: Callable[[], None] | None = None

    def _bump(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return body

    async def read_namespaced_secret(self, name: str, namespace: str) -> V1Secret:
        body = self.secrets.get((namespace, name))
        if body is None:
            raise ApiException(status=404, reason="Not Found")
        meta = body["metadata"]
        return V1Secret(
            data=dict(body.get("data") or {}),
            type=body.get("type"),
            metadata=V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels=meta.get("labels"),
                annotations=meta.get("annotations"),
                resource_version=meta["resourceVersion"],
            ),
        )

    async def create_namespaced_secret(self, namespace: str, body: dict[str, Any]) -> None:
        if self.before_write:
            hook, self.before_write = self.before_write, None
            hook()
        key = (namespace, body["metadata"]["name"])
        if key in self.secrets:
            raise ApiException(status=409, reason="AlreadyExists")
        self.writes += 1
        self.secrets[key] = self._bump(body)

    async def replace_namespaced_secret(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        if self.before_write:
            hook, self.before_write = self.before_write, None
            hook()
        current = self.secrets.get((namespace, name))
        if current is None:
            raise ApiException(status=404, reason="Not Found")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        if body.get("type") != current.get("type"):
            raise ApiException(status=422, reason="type is immutable")
        self.writes += 1
        self.secrets[(namespace, name)] = self._bump(body)

    def decoded(
        self, namespace: str = "grove-system", name: str = "grove-webhook-server-cert"
    ) -> dict[str, bytes]:
        return {k: base64.b64decode(v) for k, v in self.secrets[(namespace, name)]["data"].items()}


@pytest.fixture
def secrets() -> Iterator[FakeSecrets]:
    yield FakeSecrets()


def secret_manager(api: FakeSecrets, directory: Path, **kwargs: Any) -> CertManager:
    return CertManager(
        directory,
        dns_names=service_dns_names("grove-operator", "grove-system"),
        secret=SecretStore(api, "grove-system", "grove-webhook-server-cert"),
        **kwargs,
    )


async def test_secret_created_with_grove_labels_and_mirrored(secrets: FakeSecrets, tmp_path: Path) -> None:
    manager = secret_manager(secrets, tmp_path)
    await manager.ensure()
    stored = secrets.secrets[("grove-system", "grove-webhook-server-cert")]
    assert stored["type"] == SECRET_TYPE == "kubernetes.io/tls"
    assert stored["metadata"]["labels"] == dict(SECRET_LABELS)
    # Not a workload child's labels (managed-by grove-operator, part-of): cleanups by those never touch it.
    assert SECRET_LABELS == {
        "app.kubernetes.io/name": "grove-operator",
        "app.kubernetes.io/component": "webhook-serving-certificate",
    }
    data = secrets.decoded()
    assert sorted(data) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    # The serving directory mirrors the Secret, without the CA key.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert (tmp_path / "tls.crt").read_bytes() == data["tls.crt"]
    assert manager.ca_bundle() == data["ca.crt"]

    # A second replica / a restart reuses it; no write.
    other = secret_manager(secrets, tmp_path / "other")
    await other.ensure()
    assert secrets.writes == 1
    assert other.serving_certificate().serial_number == manager.serving_certificate().serial_number


async def test_secret_placeholder_is_filled_in_place(secrets: FakeSecrets, tmp_path: Path) -> None:
    # Grove's chart ships an empty Secret (type kubernetes.io/tls); it must be updated, not recreated.
    secrets.secrets[("grove-system", "grove-webhook-server-cert")] = {
        "type": SECRET_TYPE,
        "metadata": {
            "name": "grove-webhook-server-cert",
            "labels": {"helm": "yes", "app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "grove"},
            "resourceVersion": "7",
        },
        "data": {"tls.crt": "", "tls.key": "", "ca.crt": ""},
    }
    manager = secret_manager(secrets, tmp_path)
    await manager.ensure()
    stored = secrets.secrets[("grove-system", "grove-webhook-server-cert")]
    assert stored["metadata"]["labels"] == {
        **SECRET_LABELS,
        "helm": "yes",
        "app.kubernetes.io/managed-by": "Helm",
    }
    # Helm's ownership label and annotations survive, or `helm upgrade`/`uninstall` would disown the Secret.
    assert stored["metadata"]["annotations"] == {"meta.helm.sh/release-name": "grove"}
    assert secrets.decoded()["tls.crt"] == manager.files.tls_crt


async def test_an_earlier_versions_workload_labels_are_dropped_when_the_secret_is_written(
    secrets: FakeSecrets, tmp_path: Path
) -> None:
    secrets.secrets[("grove-system", "grove-webhook-server-cert")] = {
        "type": SECRET_TYPE,
        "metadata": {
            "name": "grove-webhook-server-cert",
            "labels": {
                "app.kubernetes.io/managed-by": "grove-operator",
                "app.kubernetes.io/component": "webhook",
                "app.kubernetes.io/part-of": "grove",
                "team": "infra",
            },
            "resourceVersion": "3",
        },
        "data": {"tls.crt": "", "tls.key": "", "ca.crt": ""},
    }
    await secret_manager(secrets, tmp_path).ensure()
    stored = secrets.secrets[("grove-system", "grove-webhook-server-cert")]
    assert stored["metadata"]["labels"] == {**SECRET_LABELS, "team": "infra"}


async def test_secret_create_race_adopts_the_winner(secrets: FakeSecrets, tmp_path: Path) -> None:
    winner = secret_manager(secrets, tmp_path / "winner")
    loser = secret_manager(secrets, tmp_path / "loser")

    def other_replica_first() -> None:
        files = plan(None, winner.spec, now()).files
        body = SecretStore(secrets, "grove-system", "grove-webhook-server-cert").body(files)
        secrets.secrets[("grove-system", "grove-webhook-server-cert")] = secrets._bump(body)

    secrets.before_write = other_replica_first
    await loser.ensure()  # create -> AlreadyExists -> re-read -> valid -> adopt
    assert secrets.writes == 0
    assert loser.files.tls_crt == secrets.decoded()["tls.crt"]
    await winner.ensure()
    assert winner.files == loser.files


async def test_secret_update_conflict_rereads(secrets: FakeSecrets, clock: Clock, tmp_path: Path) -> None:
    manager = secret_manager(secrets, tmp_path, cert_validity=3 * DAY, clock=clock)
    await manager.ensure()
    peer = secret_manager(secrets, tmp_path / "peer", cert_validity=3 * DAY, clock=clock)
    clock.advance(2.5 * DAY)

    def peer_renews_first() -> None:
        # Simulate the peer's write landing between our read and our replace.
        current = secrets.secrets[("grove-system", "grove-webhook-server-cert")]
        files = CertFiles.from_entries(secrets.decoded())
        assert files is not None
        renewed = plan(files, peer.spec, clock()).files
        body = SecretStore(secrets, "grove-system", "grove-webhook-server-cert").body(renewed)
        body["type"] = current["type"]
        secrets.secrets[("grove-system", "grove-webhook-server-cert")] = secrets._bump(body)

    secrets.before_write = peer_renews_first
    assert await manager.check()
    assert manager.files.tls_crt == secrets.decoded()["tls.crt"]
    assert (tmp_path / "tls.crt").read_bytes() == secrets.decoded()["tls.crt"]


async def test_manual_mode_from_secret(secrets: FakeSecrets, tmp_path: Path) -> None:
    manager = CertManager(
        tmp_path, mode="manual", secret=SecretStore(secrets, "grove-system", "grove-webhook-server-cert")
    )
    with pytest.raises(CertError, match="not found"):
        await manager.ensure()
    files = plan(None, LOCAL, now()).files
    user = CertFiles(files.tls_crt, files.tls_key, files.ca_crt)
    secrets.secrets[("grove-system", "grove-webhook-server-cert")] = secrets._bump(
        SecretStore(secrets, "grove-system", "grove-webhook-server-cert").body(user)
    )
    await manager.ensure()
    assert (tmp_path / "tls.crt").read_bytes() == files.tls_crt
    assert secrets.writes == 0
    assert not await manager.check()
