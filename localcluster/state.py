"""The state file `<state>/state.json`: what `up` started, so `down`/`status` can find it by PID later."""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import ApiClient, Configuration

from localcluster import api

STATE_FILE = "state.json"


@dataclass
class Component:
    """One started process."""

    name: str
    pid: int
    port: int | None
    log: Path
    argv: list[str] = field(default_factory=list)


@dataclass
class ClusterInfo:
    """Everything a client or a later command needs to use or stop the cluster."""

    state_dir: Path
    kubeconfig: Path
    apiserver_url: str
    ca_file: Path
    admin_cert_file: Path
    admin_key_file: Path
    components: dict[str, Component] = field(default_factory=dict)
    nodes: int = 0
    complete: bool = False  # false while `up` is still starting things
    # The init runner (localcluster/initrunner.py): not a Kubernetes component, so not in `components`;
    # `up` restarts it on its own when it died.
    initrunner: Component | None = None

    @property
    def pids(self) -> dict[str, int]:
        return {name: c.pid for name, c in self.components.items()}

    @property
    def all_pids(self) -> list[int]:
        """Every recorded process: the components and the init runner."""
        return [*self.pids.values(), *([self.initrunner.pid] if self.initrunner else [])]

    @property
    def ports(self) -> dict[str, int | None]:
        return {name: c.port for name, c in self.components.items()}

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context for the apiserver as the admin user (urllib probes and requests)."""
        return api.ssl_context(self.ca_file, self.admin_cert_file, self.admin_key_file)

    def api_configuration(self) -> Configuration:
        return api.configuration(self.apiserver_url, self.ca_file, self.admin_cert_file, self.admin_key_file)

    def api_client(self) -> ApiClient:
        """A fresh kubernetes_asyncio ApiClient for the admin user (open it in the loop that uses it)."""
        return api.client(self.api_configuration())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)

        def plain(value: Any) -> Any:
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        return {key: plain(value) for key, value in data.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterInfo:
        def component(c: dict[str, Any]) -> Component:
            return Component(
                name=c["name"],
                pid=int(c["pid"]),
                port=c.get("port"),
                log=Path(c["log"]),
                argv=c.get("argv", []),
            )

        components = {name: component(c) for name, c in data.get("components", {}).items()}
        runner = data.get("initrunner")
        return cls(
            state_dir=Path(data["state_dir"]),
            kubeconfig=Path(data["kubeconfig"]),
            apiserver_url=data["apiserver_url"],
            ca_file=Path(data["ca_file"]),
            admin_cert_file=Path(data["admin_cert_file"]),
            admin_key_file=Path(data["admin_key_file"]),
            components=components,
            nodes=int(data.get("nodes", 0)),
            complete=bool(data.get("complete", False)),
            initrunner=component(runner) if runner else None,
        )


def save(info: ClusterInfo) -> None:
    """Write the state file atomically (it is rewritten after every spawn, so a crash never loses a PID)."""
    path = info.state_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


def load(state_dir: Path) -> ClusterInfo | None:
    """The recorded cluster in `state_dir`, or None when there is no (readable) state file."""
    path = Path(state_dir) / STATE_FILE
    try:
        return ClusterInfo.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
