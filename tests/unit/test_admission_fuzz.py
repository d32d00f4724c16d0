"""Property tests: whatever is POSTed to an admission path, the server answers sensibly.

For every body: never an HTTP 5xx, never an exception escaping into aiohttp; the answer is either
400/413 with a `Status` message, or a well-formed AdmissionReview carrying the request's uid. Whether a
body is a 400 or a 200 must agree with `parse_review` (the oracle).

The server is the same for every path, so the handlers here are the trivial one and the PodCliqueSet pair;
the other handlers are fuzzed directly in test_handler_fuzz.py and through the operator's real server in
tests/integration/test_fuzz_apiserver.py. The strategies are shared: tests/fuzzing.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from grove_api.operatorconfig import OperatorConfiguration
from tests.builders import pcs as pcs_sample
from tests.fuzzing import json_values, mutated_reviews, valid_review
from webhook.admission import (
    AdmissionRequest,
    AdmissionResponse,
    BadReview,
    Handler,
    allow,
    mutate,
    parse_review,
)
from webhook.pcs import DefaultingHandler, ValidatingHandler
from webhook.server import build_app

PATH = "/webhooks/fuzz"
MAX_BODY = 8 * 1024  # small, so that generated bodies cross it now and then
EXAMPLES = 200
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SAMPLE_OBJECT: dict[str, Any] = {
    "apiVersion": "grove.io/v1alpha1",
    "kind": "PodCliqueSet",
    "metadata": {"name": "demo", "namespace": "default", "labels": {"app": "demo"}},
    "spec": {
        "replicas": 1,
        "template": {
            "cliques": [
                {
                    "name": "worker",
                    "spec": {"roleName": "worker", "replicas": 2, "podSpec": {"containers": []}},
                }
            ]
        },
    },
}


async def allow_all(request: AdmissionRequest) -> AdmissionResponse:
    """The trivial handler."""
    return allow()


@dataclass(frozen=True)
class FuzzTarget:
    name: str
    handler: Handler
    sample_object: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(SAMPLE_OBJECT))


async def _no_topologies(_: str) -> None:
    return None


_PCS_SAMPLE = pcs_sample()
HANDLERS_UNDER_FUZZ: list[FuzzTarget] = [
    FuzzTarget("allow-all", allow_all),
    FuzzTarget("pcs-defaulting", DefaultingHandler(OperatorConfiguration()), _PCS_SAMPLE),
    FuzzTarget("pcs-validating", ValidatingHandler(OperatorConfiguration(), _no_topologies), _PCS_SAMPLE),
]


# Extra synthetic handlers that exercise the patch and the handler-failure paths of the server.
async def label_everything(request: AdmissionRequest) -> AdmissionResponse:
    obj = request.object
    if obj is None:
        return allow()
    mutated = copy.deepcopy(obj)
    metadata = mutated.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise TypeError("metadata is not an object")
    labels = metadata.setdefault("labels", {})
    labels["fuzzed"] = "yes"  # raises on odd shapes: the server must turn that into allowed=false/500
    return mutate(obj, mutated)


SERVER_PATHS_UNDER_FUZZ = [*HANDLERS_UNDER_FUZZ, FuzzTarget("label-or-fail", label_everything)]


# --- harness ------------------------------------------------------------------------------------------


class ErrorLogs(logging.Handler):
    """Collects aiohttp's "Unhandled exception"/"Error handling request" records."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Harness:
    target: FuzzTarget
    loop: asyncio.AbstractEventLoop
    client: TestClient[Any, Any]
    errors: ErrorLogs

    def post(self, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        async def go() -> tuple[int, bytes]:
            resp = await self.client.post(PATH, data=body, headers={"Content-Type": content_type})
            return resp.status, await resp.read()

        return self.loop.run_until_complete(go())


@pytest.fixture(scope="module", params=SERVER_PATHS_UNDER_FUZZ, ids=lambda t: t.name)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    target: FuzzTarget = request.param
    loop = asyncio.new_event_loop()
    errors = ErrorLogs()
    loggers = [logging.getLogger(n) for n in ("aiohttp.server", "aiohttp.web", "aiohttp.access")]
    for lg in loggers:
        lg.addHandler(errors)
    app = build_app({PATH: target.handler}, ready=lambda: True, max_body_bytes=MAX_BODY)

    async def make_client() -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        return client

    client = loop.run_until_complete(make_client())
    try:
        yield Harness(target, loop, client, errors)
    finally:
        loop.run_until_complete(client.close())
        loop.close()
        for lg in loggers:
            lg.removeHandler(errors)
    assert errors.records == [], [r.getMessage() for r in errors.records]


def accepted(body: bytes) -> AdmissionRequest | None:
    """The oracle: what `parse_review` makes of the body (None = malformed).

    RecursionError is counted as malformed: json.loads raises it for very deeply nested input and
    parse_review does not (yet) turn it into BadReview; the server answers 400 for it.
    """
    try:
        return parse_review(body)
    except (BadReview, RecursionError):
        return None


def check(status: int, payload: bytes, body: bytes) -> None:
    """The properties every answer must have."""
    event(f"HTTP {status}")
    assert status < 500, (status, payload[:300])
    out = json.loads(payload)
    assert isinstance(out, dict)
    if status in (400, 413):
        assert out["kind"] == "Status" and out["code"] == status
        assert isinstance(out["message"], str) and out["message"]
        if status == 413:
            assert len(body) > MAX_BODY
        else:
            assert accepted(body) is None
        return
    assert status == 200, (status, payload[:300])
    request = accepted(body)  # a 200 only for bodies the oracle accepts
    assert request is not None
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    response = out["response"]
    assert response["uid"] == request.uid
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        assert isinstance(response["status"]["code"], int) and response["status"]["message"]
        event(f"denied {response['status']['code']}")
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"


def expect_oracle(status: int, body: bytes) -> None:
    """Bodies within the limit: 400 exactly when parse_review rejects them."""
    if len(body) > MAX_BODY:
        assert status == 413
        return
    assert status == (200 if accepted(body) is not None else 400)


# --- properties ---------------------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(
    body=st.one_of(
        st.binary(max_size=2048),
        # around the size limit: both sides of it
        # (a repeated short pattern: hypothesis cannot draw 8 KiB of fresh random bytes per example)
        st.tuples(st.integers(MAX_BODY - 64, MAX_BODY + 64), st.binary(min_size=1, max_size=64)).map(
            lambda t: (t[1] * (t[0] // len(t[1]) + 1))[: t[0]]
        ),
    )
)
def test_arbitrary_bytes(harness: Harness, body: bytes) -> None:
    status, payload = harness.post(body)
    check(status, payload, body)
    expect_oracle(status, body)


@FUZZ_SETTINGS
@given(value=json_values, content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_arbitrary_json(harness: Harness, value: Any, content_type: str) -> None:
    body = json.dumps(value).encode()
    status, payload = harness.post(body, content_type)
    check(status, payload, body)
    expect_oracle(status, body)


@FUZZ_SETTINGS
@given(data=st.data())
def test_mutated_admission_reviews(harness: Harness, data: st.DataObject) -> None:
    body = data.draw(mutated_reviews(harness.target.sample_object))
    status, payload = harness.post(body)
    check(status, payload, body)
    expect_oracle(status, body)


@FUZZ_SETTINGS
@given(
    uid=st.text(min_size=1, max_size=60), operation=st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"])
)
def test_valid_reviews_echo_the_uid(harness: Harness, uid: str, operation: str) -> None:
    body = json.dumps(valid_review(copy.deepcopy(SAMPLE_OBJECT), uid, operation)).encode()
    status, payload = harness.post(body)
    assert status == 200
    check(status, payload, body)
    assert json.loads(payload)["response"]["uid"] == uid


def test_targets_are_registered() -> None:
    assert [t.name for t in HANDLERS_UNDER_FUZZ] == ["allow-all", "pcs-defaulting", "pcs-validating"]
    assert all(callable(t.handler) for t in SERVER_PATHS_UNDER_FUZZ)
