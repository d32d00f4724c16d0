"""kube.plain (the webhook process's reader, without kubernetes_asyncio) and webhook.lookups on top of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kube.plain import Connection, PlainReader, ReadFailed
from webhook import lookups


def test_a_connection_travels_as_json_and_shows_no_secret() -> None:
    conn = Connection(host="https://h:6443", ca_file="/ca", token="Bearer s3cret", token_file=None)
    assert Connection.from_json(conn.to_json()) == conn
    assert "s3cret" not in repr(conn)


@pytest.fixture
async def apiserver(aiohttp_server: Any) -> Any:
    """Answers like the apiserver: the object, 404, or 500; records the headers it was sent."""
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        name = request.match_info["name"]
        if name == "missing":
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        if name == "broken":
            return web.Response(status=500, text="etcdserver: request timed out")
        if name == "list":
            return web.json_response([1, 2])
        return web.json_response(
            {
                "metadata": {"name": name, "uid": "u1"},
                "spec": {"levels": [{"domain": "zone"}, {"domain": "rack"}]},
            }
        )

    app = web.Application()
    app.router.add_get("/apis/grove.io/v1alpha1/namespaces/{ns}/podcliquesets/{name}", handle)
    app.router.add_get("/apis/grove.io/v1alpha1/clustertopologybindings/{name}", handle)
    server = await aiohttp_server(app)
    server.seen = seen
    return server


async def test_reads_an_object_none_when_missing_and_fails_clearly(apiserver: Any) -> None:
    reader = PlainReader(Connection(host=str(apiserver.make_url("")), token="Bearer t0ken"))
    try:
        meta = await lookups.podcliqueset_metadata(reader.get, "default", "pcs")
        assert meta == {"name": "pcs", "uid": "u1"}
        assert apiserver.seen[-1]["Authorization"] == "Bearer t0ken"
        assert apiserver.seen[-1]["Accept"] == lookups.PARTIAL_METADATA
        assert await lookups.topology_domains(reader.get, "grove") == ["zone", "rack"]
        assert await lookups.topology_domains(reader.get, "missing") is None
        assert await lookups.podcliqueset_metadata(reader.get, "default", "missing") is None
        with pytest.raises(ReadFailed, match="HTTP 500: etcdserver: request timed out"):
            await lookups.topology_domains(reader.get, "broken")
        with pytest.raises(ReadFailed, match="expected a JSON object, got list"):
            await lookups.topology_domains(reader.get, "list")
    finally:
        await reader.close()


async def test_the_token_file_is_read_and_read_again_later(
    apiserver: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    reader = PlainReader(Connection(host=str(apiserver.make_url("")), token_file=str(token)))
    clock = [1000.0]
    monkeypatch.setattr("kube.plain.time.monotonic", lambda: clock[0])
    try:
        await lookups.topology_domains(reader.get, "grove")
        token.write_text("second\n")  # the kubelet rotated it
        await lookups.topology_domains(reader.get, "grove")
        assert [h["Authorization"] for h in apiserver.seen] == ["Bearer first", "Bearer first"]
        clock[0] += 61
        await lookups.topology_domains(reader.get, "grove")
        assert apiserver.seen[-1]["Authorization"] == "Bearer second"
    finally:
        await reader.close()


async def test_an_unreachable_apiserver_is_a_read_failure() -> None:
    reader = PlainReader(Connection(host="http://127.0.0.1:9"), timeout=2)
    try:
        with pytest.raises(ReadFailed, match=r"GET /apis/grove\.io/v1alpha1/clustertopologybindings/x"):
            await lookups.topology_domains(reader.get, "x")
    finally:
        await reader.close()
