"""The webhook HTTPS server: health, AdmissionReview round trips, error mapping, TLS reload, shutdown."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime as dt
import json
import logging
import ssl
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509

from certs.manager import CertManager, plan
from certs.store import DirectoryStore
from grove_api.operatorconfig import OperatorConfiguration
from kube.logs import JsonFormatter
from tests.builders import pcs
from tests.fuzzing import nested, valid_review
from webhook.admission import AdmissionRequest, AdmissionResponse, allow, deny, mutate
from webhook.pcs import DefaultingHandler, ValidatingHandler
from webhook.server import WebhookServer, build_app
from webhook.tls import ReloadableTLS, TLSError

PATH = "/webhooks/test"
LOCAL_DNS = ["localhost"]
LOCAL_IPS = ["127.0.0.1"]


def review(
    obj: dict[str, Any] | None = None, *, uid: str | None = None, operation: str = "CREATE"
) -> dict[str, Any]:
    obj = obj if obj is not None else {"metadata": {"name": "x", "namespace": "default"}, "spec": {}}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": "grove.io", "version": "v1alpha1", "kind": "PodCliqueSet"},
            "resource": {"group": "grove.io", "version": "v1alpha1", "resource": "podcliquesets"},
            "name": "x",
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
        },
    }


async def decide(request: AdmissionRequest) -> AdmissionResponse:
    """Test handler: behaviour chosen by spec.action in the object."""
    obj = request.object or {}
    action = obj.get("spec", {}).get("action", "allow")
    if action == "deny":
        return deny("spec.replicas: Invalid value: -1: must be >= 0", code=422, reason="Invalid")
    if action == "patch":
        mutated = copy.deepcopy(obj)
        mutated["metadata"].setdefault("labels", {})["grove.io/defaulted"] = "true"
        mutated["spec"]["replicas"] = 1
        return mutate(obj, mutated, warnings=["defaulted replicas"])
    if action == "raise":
        raise KeyError("cliques")
    if action == "wrong-type":
        return {"allowed": True}  # type: ignore[return-value]
    if action == "sleep":
        await asyncio.sleep(float(obj["spec"].get("seconds", 0.5)))
    return allow(warnings=["just so you know"] if action == "warn" else ())


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture
async def certs(tmp_path: Path) -> CertManager:
    manager = CertManager(tmp_path / "certs", dns_names=LOCAL_DNS, ip_addresses=LOCAL_IPS)
    await manager.ensure()
    return manager


class Ready:
    def __init__(self) -> None:
        self.value = True

    def __call__(self) -> bool:
        return self.value


@pytest.fixture
def ready() -> Ready:
    return Ready()


@pytest.fixture
async def server(certs: CertManager, ready: Ready) -> AsyncIterator[WebhookServer]:
    srv = WebhookServer(
        {PATH: decide},
        host="127.0.0.1",
        port=0,
        tls=ReloadableTLS(certs.cert_dir),
        ready=ready,
        max_body_bytes=64 * 1024,
        shutdown_timeout=0.2,
    )
    await srv.start()
    yield srv
    await srv.stop(drain_seconds=1)


def client_ssl(bundle: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=bundle.decode())
    return ctx


@pytest.fixture
async def session(certs: CertManager) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(certs.ca_bundle()))) as s:
        yield s


# --- health and basic round trips ---------------------------------------------------------------------


async def test_port_zero_binds_a_real_port(server: WebhookServer) -> None:
    assert server.port > 0
    assert server.url == f"https://127.0.0.1:{server.port}"


async def test_healthz_and_readyz(
    server: WebhookServer, session: aiohttp.ClientSession, ready: Ready
) -> None:
    async with session.get(f"{server.url}/healthz") as resp:
        assert (resp.status, await resp.text()) == (200, "ok")
    async with session.get(f"{server.url}/readyz") as resp:
        assert (resp.status, await resp.text()) == (200, "ok")
    ready.value = False
    async with session.get(f"{server.url}/readyz") as resp:
        assert resp.status == 503
    async with session.get(f"{server.url}/healthz") as resp:
        assert resp.status == 200


async def test_tls_uses_serving_cert_and_rejects_old_protocols(
    server: WebhookServer, certs: CertManager
) -> None:
    # Verified against the CA bundle, by name (SNI) and by IP (no SNI).
    for host in ("localhost", "127.0.0.1"):
        _, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_ssl(certs.ca_bundle()), server_hostname=host
        )
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert x509.load_der_x509_certificate(der).serial_number == certs.serving_certificate().serial_number
        assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        writer.close()
        await writer.wait_closed()
    old = client_ssl(certs.ca_bundle())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.open_connection("127.0.0.1", server.port, ssl=old, server_hostname="localhost")


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with session.post(url, json=body) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("action", ["allow", "warn", "deny", "patch"])
async def test_decisions_round_trip(
    server: WebhookServer, session: aiohttp.ClientSession, action: str
) -> None:
    obj = {"metadata": {"name": "x", "namespace": "default"}, "spec": {"action": action}}
    body = review(obj)
    uid = body["request"]["uid"]
    status, out = await post(session, server.url + PATH, body)
    assert status == 200
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    response = out["response"]
    assert response["uid"] == uid
    if action == "allow":
        assert response == {"uid": uid, "allowed": True}
    elif action == "warn":
        assert response == {"uid": uid, "allowed": True, "warnings": ["just so you know"]}
    elif action == "deny":
        assert response["allowed"] is False
        assert response["status"] == {
            "code": 422,
            "message": "spec.replicas: Invalid value: -1: must be >= 0",
            "reason": "Invalid",
        }
    else:
        assert response["allowed"] is True and response["patchType"] == "JSONPatch"
        ops = json.loads(base64.b64decode(response["patch"]))
        patched = jsonpatch.apply_patch(obj, ops)
        assert patched["metadata"]["labels"] == {"grove.io/defaulted": "true"}
        assert patched["spec"] == {"action": "patch", "replicas": 1}
        assert response["warnings"] == ["defaulted replicas"]


# --- error mapping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (b"\xff\xfe\x00", "body is not valid JSON"),
        (json.dumps({"kind": "Pod", "apiVersion": "v1"}).encode(), "expected kind AdmissionReview"),
        (json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}).encode(), "no request"),
        (
            json.dumps(
                {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}
            ).encode(),
            "request.uid is required",
        ),
        (json.dumps(review(operation="PATCH")).encode(), "request.operation must be one of"),
        (b"", "body is not valid JSON"),
        (b"[" * 20_000, "nested too deeply"),  # found by the fuzz test: json.loads raises RecursionError
    ],
)
async def test_malformed_bodies_are_http_400_with_message(
    server: WebhookServer, session: aiohttp.ClientSession, body: bytes, message: str
) -> None:
    async with session.post(
        server.url + PATH, data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        status = await resp.json()
    assert status["kind"] == "Status" and status["code"] == 400 and status["reason"] == "BadRequest"
    assert message in status["message"]
    # The server is still fine afterwards.
    assert (await post(session, server.url + PATH, review()))[0] == 200


async def test_oversized_body_is_413(server: WebhookServer, session: aiohttp.ClientSession) -> None:
    big = review({"metadata": {"name": "x"}, "spec": {"blob": "x" * 70_000}})
    status, out = await post(session, server.url + PATH, big)
    assert status == 413
    assert out["code"] == 413 and "larger than the webhook's limit of 65536 bytes" in out["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        for _ in range(20):
            yield b"x" * 8192

    async with session.post(server.url + PATH, data=chunks()) as resp:
        assert resp.status == 413
        assert "limit" in (await resp.json())["message"]
    assert (await post(session, server.url + PATH, review()))[0] == 200


@pytest.mark.parametrize(("action", "error"), [("raise", "KeyError: 'cliques'"), ("wrong-type", "TypeError")])
async def test_handler_failure_is_a_denial_with_code_500(
    server: WebhookServer,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    action: str,
    error: str,
) -> None:
    body = review({"metadata": {"name": "x"}, "spec": {"action": action}})
    with caplog.at_level(logging.ERROR, logger="webhook.server"):
        status, out = await post(session, server.url + PATH, body)
    assert status == 200
    response = out["response"]
    assert response["uid"] == body["request"]["uid"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 500 and response["status"]["reason"] == "InternalError"
    assert f"internal error in admission webhook {PATH}: {error}" in response["status"]["message"]
    records = [r for r in caplog.records if r.getMessage() == "admission handler failed"]
    assert records and records[0].exc_info is not None
    assert getattr(records[0], "uid") == body["request"]["uid"]  # noqa: B009
    assert (await post(session, server.url + PATH, review()))[0] == 200


async def test_unknown_path_and_method_are_not_5xx(
    server: WebhookServer, session: aiohttp.ClientSession
) -> None:
    async with session.post(server.url + "/nope", json=review()) as resp:
        assert resp.status == 404
    async with session.get(server.url + PATH) as resp:
        assert resp.status == 405


async def test_build_app_with_test_client(aiohttp_client: Any) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(build_app({PATH: decide}, ready=lambda: False))
    assert (await client.get("/readyz")).status == 503
    resp = await client.post(PATH, json=review(uid="abc"))
    assert (await resp.json())["response"] == {"uid": "abc", "allowed": True}
    with pytest.raises(ValueError, match="invalid admission path"):
        build_app({"/healthz": decide}, ready=lambda: True)


def test_json_formatter() -> None:
    record = logging.LogRecord("webhook.server", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.uid = "u1"
    out = json.loads(JsonFormatter().format(record))
    assert out["msg"] == "hello world" and out["uid"] == "u1" and out["level"] == "info"
    assert out["logger"] == "webhook.server" and "ts" in out


# --- TLS reload ---------------------------------------------------------------------------------------


async def test_reload_rejects_mismatched_pair_and_keeps_serving(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    first = plan(None, CertManager(tmp_path, dns_names=LOCAL_DNS).spec, dt.datetime.now(dt.UTC)).files
    store.write(first)
    tls = ReloadableTLS(tmp_path)
    serial = tls.serial
    other = plan(None, CertManager(tmp_path, dns_names=LOCAL_DNS).spec, dt.datetime.now(dt.UTC)).files
    (tmp_path / "tls.key").write_bytes(other.tls_key)
    assert tls.changed_on_disk()
    with pytest.raises(TLSError, match="does not match"):
        tls.reload()
    assert tls.serial == serial
    (tmp_path / "tls.crt").write_bytes(other.tls_crt)
    assert tls.reload_if_changed()
    assert tls.serial != serial
    assert not tls.reload_if_changed()
    with pytest.raises(TLSError, match="does not exist"):
        ReloadableTLS(tmp_path / "missing")


async def test_reload_serves_new_cert_with_and_without_sni(server: WebhookServer, certs: CertManager) -> None:
    tls = server.tls
    assert isinstance(tls, ReloadableTLS)
    old_serial = tls.serial
    # Keep one connection open across the reload: it keeps working with the old certificate.
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=client_ssl(certs.ca_bundle()), server_hostname="localhost"
    )
    renewed = plan(None, certs.spec, dt.datetime.now(dt.UTC)).files  # a whole new CA, to be sure
    DirectoryStore(certs.cert_dir).write(renewed)
    assert tls.reload()
    assert tls.serial != old_serial
    for host in ("localhost", None):  # SNI callback swap, and the in-place reload for clients without SNI
        ctx = client_ssl(renewed.ca_crt)
        if host is None:
            ctx.check_hostname = False
        _, w = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx, server_hostname=host)
        der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert x509.load_der_x509_certificate(der).serial_number == tls.serial
        w.close()
        await w.wait_closed()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert (await reader.read()).startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("mechanism", ["sni-callback", "in-place"])
async def test_each_reload_mechanism_alone_serves_the_new_cert(
    server: WebhookServer, certs: CertManager, monkeypatch: pytest.MonkeyPatch, mechanism: str
) -> None:
    """With only one of the two mechanisms active, clients with and without SNI get the new cert."""
    import webhook.tls

    tls = server.tls
    assert isinstance(tls, ReloadableTLS)
    if mechanism == "sni-callback":  # disable the in-place load into the listening context
        real_load = webhook.tls._load

        def load_fresh_only(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
            if ctx is not tls.context:
                real_load(ctx, cert_pem, key_pem)

        monkeypatch.setattr(webhook.tls, "_load", load_fresh_only)
    else:
        tls.context.sni_callback = None
    old_serial = tls.serial
    renewed = plan(None, certs.spec, dt.datetime.now(dt.UTC)).files
    DirectoryStore(certs.cert_dir).write(renewed)
    assert tls.reload()
    assert tls.serial != old_serial

    for host in ("localhost", None):
        ctx = client_ssl(renewed.ca_crt)
        ctx.check_hostname = host is not None
        _, w = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx, server_hostname=host)
        der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        w.close()
        await w.wait_closed()
        assert x509.load_der_x509_certificate(der).serial_number == tls.serial, (mechanism, host)


async def test_rotation_while_requests_keep_succeeding(tmp_path: Path) -> None:
    """Continuous new-connection traffic while the CertManager rotates serving certs and the CA."""
    bundles: list[bytes] = []
    rotations = 0
    tls: ReloadableTLS | None = None

    async def on_rotated() -> None:
        nonlocal rotations
        assert tls is not None
        tls.reload()
        bundles.append(manager.ca_bundle())
        rotations += 1

    manager = CertManager(
        tmp_path,
        dns_names=LOCAL_DNS,
        ip_addresses=LOCAL_IPS,
        # X.509 times have one-second resolution: serving certs renew about every second, the CA
        # about every 3 s (each serving cert is renewed ~0.6 s before it expires).
        ca_validity=dt.timedelta(seconds=5),
        cert_validity=dt.timedelta(seconds=2),
        check_interval=0.05,
        on_rotated=on_rotated,
    )
    await manager.ensure()
    bundles.append(manager.ca_bundle())
    tls = ReloadableTLS(tmp_path)
    server = WebhookServer({PATH: decide}, host="127.0.0.1", port=0, tls=tls, shutdown_timeout=0.2)
    await server.start()
    await manager.start()

    serials: set[int] = set()
    issuers: set[bytes] = set()
    failures: list[str] = []
    lagging_ok = 0
    requests = 0

    async def one_request(bundle: bytes, host: str) -> int:
        """POST over a brand-new TLS connection (SNI for "localhost", none for the IP)."""
        body = review()
        payload = json.dumps(body).encode()
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_ssl(bundle), server_hostname=host
        )
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.write(
                f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            head, _, rest = (await reader.read()).partition(b"\r\n\r\n")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
        assert head.split()[1] == b"200", head
        assert json.loads(rest)["response"]["uid"] == body["request"]["uid"]
        cert = x509.load_der_x509_certificate(der)
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        assert aki is not None
        issuers.add(aki)  # every CA is called Grove-CA: tell them apart by key
        return cert.serial_number

    async def client_loop(lagging: bool) -> None:
        nonlocal lagging_ok, requests
        deadline = time.monotonic() + 15
        i = 0
        # Until the serving cert moved to a second CA and then rotated again (or a generous timeout).
        while time.monotonic() < deadline and not (len(issuers) >= 2 and len(serials) >= 5):
            i += 1
            host = "localhost" if i % 2 else "127.0.0.1"
            # The current bundle, or (like an apiserver that has not seen the last injection yet) the
            # bundle from one rotation before.
            before = rotations
            bundle = bundles[-2] if lagging and len(bundles) > 1 else bundles[-1]
            requests += 1
            try:
                serials.add(await one_request(bundle, host))
                lagging_ok += lagging
            except Exception as err:
                if lagging and rotations != before:
                    continue  # another rotation happened meanwhile: this client is now two behind
                failures.append(f"{'lagging' if lagging else 'current'} {host}: {type(err).__name__}: {err}")

    try:
        await asyncio.gather(client_loop(False), client_loop(True), client_loop(False))
    finally:
        await manager.stop()
        await server.stop(drain_seconds=1)
    print(
        f"STATS serials={len(serials)} issuers={len(issuers)} lagging_ok={lagging_ok} rotations={rotations} requests={requests}"
    )
    assert failures == []
    assert len(serials) >= 4, f"served serials: {serials}"
    assert len(issuers) >= 2, "the CA should have rotated at least once"
    assert lagging_ok > 20
    assert rotations >= 4
    assert len(bundles[-1]) > 0


# --- graceful shutdown --------------------------------------------------------------------------------


async def test_graceful_stop_drains_in_flight_request(server: WebhookServer, certs: CertManager) -> None:
    connector = aiohttp.TCPConnector(ssl=client_ssl(certs.ca_bundle()))
    async with aiohttp.ClientSession(connector=connector) as session:
        slow = review({"metadata": {"name": "x"}, "spec": {"action": "sleep", "seconds": 0.5}})
        request = asyncio.create_task(post(session, server.url + PATH, slow))
        while server.in_flight == 0:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        stopping = asyncio.create_task(server.stop(drain_seconds=5))
        await asyncio.sleep(0.05)
        assert not server.is_ready()
        with pytest.raises(aiohttp.ClientConnectorError):  # the listener is closed
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as fresh:
                await fresh.get(f"https://127.0.0.1:{server.port}/healthz")
        status, out = await request
        await stopping
        assert status == 200 and out["response"]["allowed"] is True
        assert 0.3 < time.monotonic() - started < 3


async def test_stop_gives_up_after_drain_timeout(certs: CertManager) -> None:
    srv = WebhookServer(
        {PATH: decide}, host="127.0.0.1", port=0, tls=ReloadableTLS(certs.cert_dir), shutdown_timeout=0.1
    )
    await srv.start()
    connector = aiohttp.TCPConnector(ssl=client_ssl(certs.ca_bundle()))
    async with aiohttp.ClientSession(connector=connector) as session:
        stuck = review({"metadata": {"name": "x"}, "spec": {"action": "sleep", "seconds": 30}})
        request = asyncio.create_task(post(session, srv.url + PATH, stuck))
        while srv.in_flight == 0:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await srv.stop(drain_seconds=0.2)
        assert time.monotonic() - started < 2
        with pytest.raises(aiohttp.ClientError):
            await request


@pytest.mark.parametrize("handler", ["defaulting", "validating"])
async def test_an_object_nested_too_deeply_for_a_handler_is_a_bad_request(
    aiohttp_client: Any, caplog: pytest.LogCaptureFixture, handler: str
) -> None:
    """Found by tests/integration/test_fuzz_apiserver.py: on an UPDATE whose objects nest 400-900 deep
    (parseable, but past the interpreter's recursion limit or pydantic's serialization depth), the defaulting
    handler's deep copy raised RecursionError and the validating handler's model_dump ValueError, answered as
    internal errors (500). The apiserver prunes such nesting from a PodCliqueSet; a review sent straight to
    the webhook gets a 400 for its input."""
    old = pcs("deep")
    old["spec"]["x"] = nested(900 if handler == "defaulting" else 400)

    async def no_topologies(_: str) -> None:
        return None

    config = OperatorConfiguration()
    handle = (
        DefaultingHandler(config) if handler == "defaulting" else ValidatingHandler(config, no_topologies)
    )
    client: TestClient[Any, Any] = await aiohttp_client(build_app({PATH: handle}, ready=lambda: True))
    with caplog.at_level(logging.WARNING, logger="webhook.server"):
        resp = await client.post(PATH, data=json.dumps(valid_review(old, "deep", "UPDATE")))
    assert resp.status == 200
    response = (await resp.json())["response"]
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert "nested more than 100 levels deep" in response["status"]["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
