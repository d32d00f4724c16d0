"""grove-operator without a cluster: flags, configuration and identity errors, handlers, health endpoints."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grove_api import constants as c
from grove_api.operatorconfig import OperatorConfiguration, with_namespace
from grove_operator import main as operator_main
from grove_operator.health import build_app
from grove_operator.identity import IdentityError, operator_namespace, operator_username
from grove_operator.runtime import Readiness
from grove_operator.webhooks import build_handlers
from kube.logs import configure_logging, tag_records
from webhook import paths


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """main() configures the root logger (JSON on stderr); put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert operator_main.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("grove-operator ")


def test_invalid_configuration_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("kind: OperatorConfiguration\nlogLevel: loud\n")
    assert operator_main.main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "logLevel" in err


def test_missing_service_account_name_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(c.ENV_OPERATOR_SERVICE_ACCOUNT_NAME, raising=False)
    assert operator_main.main([]) == 2
    assert 'no "GROVE_OPERATOR_SERVICE_ACCOUNT_NAME" environment variable' in capsys.readouterr().err


def test_username_from_env_and_namespace(tmp_path: Path) -> None:
    config = OperatorConfiguration.model_validate({"server": {"webhooks": {"namespace": "ops"}}})
    no_file = tmp_path / "missing"
    env = {c.ENV_OPERATOR_SERVICE_ACCOUNT_NAME: "grove-operator"}
    assert operator_username(config, env, no_file) == "system:serviceaccount:ops:grove-operator"
    ns_file = tmp_path / "namespace"
    ns_file.write_text("in-pod\n")
    assert operator_namespace(config, ns_file) == "in-pod"
    assert operator_username(config, env, ns_file) == "system:serviceaccount:in-pod:grove-operator"
    with pytest.raises(IdentityError, match="GROVE_OPERATOR_SERVICE_ACCOUNT_NAME"):
        operator_username(config, {}, no_file)


def test_the_install_namespace_is_where_the_operator_runs_unless_the_file_names_one() -> None:
    """An install into any namespace: the certificate Secret, the Service names in the certificate and the
    lease follow the pod's namespace without the configuration naming it."""
    default = OperatorConfiguration()
    assert default.server.webhooks.namespace == "grove-system"
    assert with_namespace(default, "").server.webhooks.namespace == "grove-system"
    moved = with_namespace(default, "team-a")
    assert moved.server.webhooks.namespace == "team-a"
    assert default.server.webhooks.namespace == "grove-system"  # a copy
    named = OperatorConfiguration.model_validate({"server": {"webhooks": {"namespace": "ops"}}})
    assert with_namespace(named, "team-a").server.webhooks.namespace == "ops"


def test_handlers_for_every_webhook() -> None:
    client: Any = object()  # lookups are only called per request
    config = OperatorConfiguration()
    handlers = build_handlers(config, client, "system:serviceaccount:grove-system:grove-operator")
    assert set(handlers) == {
        paths.DEFAULT_PODCLIQUESET,
        paths.VALIDATE_PODCLIQUESET,
        paths.AUTHORIZER,
        paths.VALIDATE_CLUSTERTOPOLOGY,
        paths.MUTATE_POD,
    }
    off = OperatorConfiguration.model_validate({"authorizer": {"enabled": False}})
    assert paths.AUTHORIZER not in build_handlers(off, client, None)
    with pytest.raises(ValueError, match="username"):
        build_handlers(config, client, None)


async def test_health_endpoints(aiohttp_client: Any) -> None:
    readiness = Readiness()
    client = await aiohttp_client(build_app(readiness))
    assert (await client.get(paths.HEALTHZ)).status == 200
    response = await client.get(paths.READYZ)
    assert response.status == 503 and await response.text() == "starting"
    readiness.reason = ""
    response = await client.get(paths.READYZ)
    assert response.status == 200 and await response.text() == "ok"


@pytest.mark.parametrize(("given", "seconds"), [("15s", 15.0), ("1m30s", 90.0), ("500ms", 0.5), (12, 12.0)])
def test_leader_election_durations_as_grove_writes_them(given: Any, seconds: float) -> None:
    """Grove's configuration files hold Go durations; ours take those or plain seconds."""
    config = OperatorConfiguration.model_validate({"leaderElection": {"retryPeriod": given}})
    assert config.leader_election.retry_period == seconds


def test_a_malformed_duration_names_the_field_and_the_forms() -> None:
    with pytest.raises(ValueError, match=r"leaderElection.leaseDuration[\s\S]*Go duration"):
        OperatorConfiguration.model_validate({"leaderElection": {"leaseDuration": "15 s"}})


def test_the_webhook_process_tags_its_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """Parent and webhook process write to one stream: the child's lines say which process wrote them."""
    configure_logging("info", "json")
    tag_records(component="webhook-process")
    logging.getLogger("webhook.server").info("webhook server listening", extra={"url": "https://x"})
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (line["component"], line["msg"], line["url"]) == (
        "webhook-process",
        "webhook server listening",
        "https://x",
    )
