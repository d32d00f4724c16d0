"""/metrics behind TokenReview + SubjectAccessReview (`server.metrics.secure`): the pure decisions, the cache,
the endpoint with a fake review API, and the operator serving it over HTTPS with the webhook certificate,
reloaded with it. The real apiserver: tests/integration/test_metrics_auth.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509

from certs.manager import CertManager, plan
from certs.store import DirectoryStore
from grove_api.operatorconfig import OperatorConfiguration
from grove_operator import apicalls
from grove_operator import metricsauth as ma
from grove_operator.metrics import build_app
from grove_operator.runtime import Operator

JSON = dict[str, Any]
READER: JSON = {
    "username": "system:serviceaccount:monitoring:prometheus",
    "uid": "u-1",
    "groups": ["system:serviceaccounts", "system:authenticated"],
    "extra": {"authentication.kubernetes.io/pod-name": ["prometheus-0"]},
}
OTHER: JSON = {"username": "system:serviceaccount:team-a:default", "groups": ["system:authenticated"]}


class FakeReviews:
    """The apiserver's two review APIs: `tokens` it knows (token -> user), users allowed `get` on /metrics."""

    def __init__(self) -> None:
        self.tokens: dict[str, JSON] = {"reader-token": READER, "other-token": OTHER}
        self.allowed = {READER["username"]}
        self.calls: list[tuple[str, JSON]] = []
        self.failure: Exception | None = None

    async def __call__(self, path: str, body: JSON) -> JSON:
        self.calls.append((path, body))
        if self.failure is not None:
            raise self.failure
        if path == ma.TOKEN_REVIEWS:
            user = self.tokens.get(body["spec"]["token"])
            status = {"authenticated": True, "user": user} if user else {"error": "invalid bearer token"}
            return {**body, "status": status}
        assert path == ma.SUBJECT_ACCESS_REVIEWS
        spec = body["spec"]
        wanted = {"path": "/metrics", "verb": "get"}
        allowed = spec["user"] in self.allowed and spec["nonResourceAttributes"] == wanted
        return {**body, "status": {"allowed": allowed, **({} if allowed else {"reason": "no RBAC"})}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- pure ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("  BEARER abc  ", "abc"),
        ("Bearer abc def", "abc"),
        ("Bearer", None),
        ("Bearer  abc", None),  # an empty token between two spaces, as the apiserver reads it
        ("Basic YTpi", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_is_read_as_the_apiserver_reads_it(header: str | None, token: str | None) -> None:
    assert ma.bearer_token(header) == token


def test_review_bodies_carry_the_token_then_the_whole_user() -> None:
    assert ma.token_review("t") == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "t"},
    }
    user = ma.reviewed_user({"status": {"authenticated": True, "user": READER}})
    assert user == ma.User(
        name=READER["username"],
        uid="u-1",
        groups=("system:serviceaccounts", "system:authenticated"),
        extra={"authentication.kubernetes.io/pod-name": ("prometheus-0",)},
    )
    assert ma.access_review(user, "get", "/metrics") == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
            "user": READER["username"],
            "uid": "u-1",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/pod-name": ["prometheus-0"]},
        },
    }
    bare = ma.User(name="alice")
    assert ma.access_review(bare, "get", "/metrics")["spec"] == {
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
        "user": "alice",
    }


@pytest.mark.parametrize(
    "status",
    [
        {"authenticated": False, "error": "invalid bearer token"},
        {"authenticated": True, "user": {}},  # no username: nobody to authorize
        {"authenticated": "true", "user": READER},  # only a JSON true counts
        {},
    ],
)
def test_anything_but_an_authenticated_user_is_nobody(status: JSON) -> None:
    assert ma.reviewed_user({"status": status}) is None


def test_only_an_allowed_access_review_lets_through() -> None:
    user = ma.User(name="bob")
    assert ma.access_verdict(user, {"status": {"allowed": True}}) == ma.ALLOWED
    for status in ({"allowed": False, "denied": True}, {"allowed": False}, {}):  # denied / no opinion
        verdict = ma.access_verdict(user, {"status": status})
        assert (verdict.status, verdict.message) == (403, "Authorization denied for user bob")


def test_decisions_are_cached_under_the_token_hash_per_verb_and_path() -> None:
    key = ma.token_key("secret-token", "get", "/metrics")
    assert "secret-token" not in "".join(key) and len(key[0]) == 64
    assert key == ma.token_key("secret-token", "get", "/metrics")
    assert key != ma.token_key("secret-token", "head", "/metrics")
    assert key != ma.token_key("other", "get", "/metrics")


def test_cache_keeps_verdicts_for_their_ttl_never_errors_and_stays_bounded() -> None:
    clock = Clock()
    cache = ma.DecisionCache(ma.CachePolicy(allowed_seconds=10, denied_seconds=5, max_entries=3), clock)
    allowed, denied = ma.token_key("a", "get", "/metrics"), ma.token_key("d", "get", "/metrics")
    cache.put(allowed, ma.ALLOWED)
    cache.put(denied, ma.UNAUTHORIZED)
    cache.put(ma.token_key("e", "get", "/metrics"), ma.AUTHENTICATION_FAILED)
    assert len(cache) == 2, "a 500 is asked again next time"
    clock.now += 4.9
    assert cache.get(allowed) == ma.ALLOWED and cache.get(denied) == ma.UNAUTHORIZED
    clock.now += 0.1
    assert cache.get(denied) is None and cache.get(allowed) == ma.ALLOWED
    clock.now += 5.0
    assert cache.get(allowed) is None and len(cache) == 0
    keys = [ma.token_key(str(i), "get", "/metrics") for i in range(4)]
    for key in keys[:3]:
        cache.put(key, ma.ALLOWED)
    assert cache.get(keys[0]) == ma.ALLOWED  # used: the least recently used is now keys[1]
    cache.put(keys[3], ma.ALLOWED)
    assert len(cache) == 3 and cache.get(keys[1]) is None
    assert all(cache.get(k) == ma.ALLOWED for k in (keys[0], keys[2], keys[3]))


async def test_gate_asks_the_apiserver_once_per_ttl_and_again_after_an_error() -> None:
    reviews, clock = FakeReviews(), Clock()
    gate = ma.Gate(reviews, ma.DecisionCache(ma.CachePolicy(), clock))
    assert await gate.check(None, "GET", "/metrics") == ma.UNAUTHORIZED
    assert reviews.calls == [], "no token: nothing to ask"
    assert (await gate.check("Bearer reader-token", "GET", "/metrics")).allowed
    assert [path for path, _ in reviews.calls] == [ma.TOKEN_REVIEWS, ma.SUBJECT_ACCESS_REVIEWS]
    for _ in range(5):
        assert (await gate.check("Bearer reader-token", "GET", "/metrics")).allowed
    assert len(reviews.calls) == 2, "scrapes within the TTL cost no API call"
    assert (await gate.check("Bearer nonsense", "GET", "/metrics")).status == 401
    assert (await gate.check("Bearer nonsense", "GET", "/metrics")).status == 401
    assert len(reviews.calls) == 3, "an unknown token is asked about once per TTL"
    clock.now += ma.CachePolicy().allowed_seconds
    reviews.failure = TimeoutError("apiserver too slow")
    assert await gate.check("Bearer reader-token", "GET", "/metrics") == ma.AUTHENTICATION_FAILED
    reviews.failure = None
    assert (await gate.check("Bearer reader-token", "GET", "/metrics")).allowed, "errors are not cached"


async def test_gate_answers_500_when_the_access_review_fails() -> None:
    reviews = FakeReviews()
    gate = ma.Gate(reviews, ma.DecisionCache(ma.CachePolicy()))

    async def token_only(path: str, body: JSON) -> JSON:
        if path == ma.SUBJECT_ACCESS_REVIEWS:
            raise ConnectionResetError("gone")
        return await reviews(path, body)

    gate.reviews = token_only
    verdict = await gate.check("Bearer reader-token", "GET", "/metrics")
    assert (verdict.status, verdict.message) == (500, f"Authorization for user {READER['username']} failed")


# --- the endpoint ---------------------------------------------------------------------------------------


@pytest.fixture
async def reviews() -> FakeReviews:
    return FakeReviews()


@pytest.fixture
async def secured(aiohttp_client: Any, reviews: FakeReviews) -> TestClient[Any, Any]:
    gate = ma.Gate(reviews, ma.DecisionCache(ma.CachePolicy()))
    client: TestClient[Any, Any] = await aiohttp_client(build_app(gate))
    return client


async def test_metrics_without_a_token_or_with_an_unknown_one_are_401(secured: TestClient[Any, Any]) -> None:
    for headers in ({}, {"Authorization": "Basic YTpi"}, bearer("nonsense")):
        response = await secured.get("/metrics", headers=headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await response.text() == "Unauthorized"
    assert (await secured.get("/elsewhere")).status == 401, "nothing is told to a caller without a token"


async def test_metrics_for_a_user_without_the_role_are_403(
    secured: TestClient[Any, Any], reviews: FakeReviews
) -> None:
    response = await secured.get("/metrics", headers=bearer("other-token"))
    assert response.status == 403
    assert await response.text() == f"Authorization denied for user {OTHER['username']}"


async def test_metrics_for_a_reader_are_200_with_prometheus_text(
    secured: TestClient[Any, Any], reviews: FakeReviews
) -> None:
    response = await secured.get("/metrics", headers=bearer("reader-token"))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "# TYPE python_info gauge" in await response.text()
    (_, token_review), (_, access_review) = reviews.calls
    assert token_review["spec"] == {"token": "reader-token"}
    assert access_review["spec"]["user"] == READER["username"]
    assert access_review["spec"]["uid"] == READER["uid"]
    assert access_review["spec"]["groups"] == READER["groups"]
    assert access_review["spec"]["extra"] == READER["extra"]
    assert access_review["spec"]["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}


async def test_review_failure_is_500(secured: TestClient[Any, Any], reviews: FakeReviews) -> None:
    reviews.failure = aiohttp.ClientConnectionError("apiserver unreachable")
    response = await secured.get("/metrics", headers=bearer("reader-token"))
    assert (response.status, await response.text()) == (500, "Authentication failed")


async def test_plain_metrics_need_no_token(aiohttp_client: Any) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(build_app(None))
    response = await client.get("/metrics")
    assert response.status == 200 and "# TYPE python_info gauge" in await response.text()


# --- the operator: HTTPS with the webhook serving certificate, reloaded with it ------------------------


@pytest.fixture
async def operator(
    tmp_path: Path, reviews: FakeReviews, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Operator]:
    """A webhooks-only operator with user-provided certificates and secure metrics; the apiserver is faked
    (reviews, caBundle injection), so only what the runtime wires together is real."""

    async def create_review(_client: Any, path: str, body: JSON) -> JSON:
        return await reviews(path, body)

    async def inject_ca_bundle(*_: Any, **__: Any) -> dict[str, str]:
        return {}

    monkeypatch.setattr(apicalls, "create_review", create_review)
    monkeypatch.setattr(apicalls, "inject_ca_bundle", inject_ca_bundle)
    loopback = {"bindAddress": "127.0.0.1", "port": 0}
    config = OperatorConfiguration.model_validate(
        {
            "server": {
                "webhooks": {
                    **loopback,
                    "mode": "url",
                    "serverCertDir": str(tmp_path / "certs"),
                    "certProvisionMode": "manual",
                },
                "healthProbes": loopback,
                "metrics": {**loopback, "secure": True},
            }
        }
    )
    spec = CertManager.from_config(config.server.webhooks).spec
    DirectoryStore(tmp_path / "certs").write(plan(None, spec, dt.datetime.now(dt.UTC)).files)
    op = Operator(config, object(), reconciler_username=None, handlers={}, controllers=False)  # type: ignore[arg-type]
    await op.start()
    yield op
    await op.stop()


async def served_serial(port: int, ca: bytes) -> int:
    ctx = ssl.create_default_context(cadata=ca.decode())
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return x509.load_der_x509_certificate(der).serial_number


async def test_operator_serves_metrics_over_https_with_the_webhook_certificate_and_reloads_it(
    operator: Operator, tmp_path: Path
) -> None:
    port, ca = operator.metrics.port, operator.certs.ca_bundle()
    assert operator.tls is not None
    assert await served_serial(port, ca) == operator.tls.serial
    url = f"https://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session:
        verify = ssl.create_default_context(cadata=ca.decode())
        async with session.get(url, ssl=verify) as response:
            assert response.status == 401
        async with session.get(url, ssl=verify, headers=bearer("other-token")) as response:
            assert response.status == 403
        async with session.get(url, ssl=verify, headers=bearer("reader-token")) as response:
            assert response.status == 200 and "# TYPE python_info gauge" in await response.text()
        with pytest.raises(aiohttp.ClientError):  # no plain HTTP on a secure port
            await session.get(f"http://127.0.0.1:{port}/metrics", headers=bearer("reader-token"))
    renewed = plan(None, operator.certs.spec, dt.datetime.now(dt.UTC)).files  # a new CA, to be sure
    DirectoryStore(tmp_path / "certs").write(renewed)
    old = operator.tls.serial
    assert await operator.certs.check()  # what the periodic check does: on_rotated reloads
    assert operator.tls.serial != old
    assert await served_serial(port, renewed.ca_crt) == operator.tls.serial
