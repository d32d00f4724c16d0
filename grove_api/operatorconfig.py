"""OperatorConfiguration (operator.config.grove.io/v1alpha1): the operator's settings file.

Field names and defaults follow Grove's (reference §7) so a Grove configuration file loads unchanged;
`server.webhooks.mode`/`host`/`serviceName`/`namespace` are ours (local URL mode vs in-cluster Service mode).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from grove_api.constants import ENV_INIT_CONTAINER_IMAGE
from grove_api.models.base import K8sModel

CONFIG_API_VERSION = "operator.config.grove.io/v1alpha1"
CONFIG_KIND = "OperatorConfiguration"
SCHEDULER_PROFILES = ("default-scheduler", "kai-scheduler", "volcano", "lpx-scheduler")
DEFAULT_EXEMPT_USERS = (
    "system:serviceaccount:kube-system:generic-garbage-collector",
    "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
    "system:kube-controller-manager",
)


class ClientConnection(K8sModel):
    qps: float = 100.0
    burst: Annotated[int, Field(ge=0)] = 120


class LeaderElection(K8sModel):
    enabled: bool = False
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    resource_lock: str = "leases"
    resource_name: str = "grove-operator-leader-election"
    resource_namespace: str = ""

    @model_validator(mode="after")
    def _durations(self) -> LeaderElection:
        if self.enabled and self.lease_duration <= self.renew_deadline:
            raise ValueError("leaderElection: LeaseDuration must be greater than RenewDeadline")
        return self


class WebhookServer(K8sModel):
    bind_address: str = "0.0.0.0"
    port: int = 2750
    server_cert_dir: str = "/etc/grove-operator/webhook-certs"
    secret_name: str = "grove-webhook-server-cert"
    cert_provision_mode: Literal["auto", "manual"] = "auto"
    # Ours: "service" = in-cluster (clientConfig.service), "url" = operator outside the cluster
    # (clientConfig.url https://<host>:<port>, as on the local cluster).
    mode: Literal["service", "url"] = "service"
    host: str = "127.0.0.1"
    service_name: str = "grove-operator"
    namespace: str = "grove-system"


class Endpoint(K8sModel):
    bind_address: str = "0.0.0.0"
    port: int


class Server(K8sModel):
    webhooks: WebhookServer = Field(default_factory=WebhookServer)
    health_probes: Endpoint = Field(default_factory=lambda: Endpoint(port=2751))
    metrics: Endpoint = Field(default_factory=lambda: Endpoint(port=2752))


class Concurrency(K8sModel):
    concurrent_syncs: Annotated[int, Field(gt=0)]


class Controllers(K8sModel):
    pod_clique_set: Concurrency = Field(default_factory=lambda: Concurrency(concurrent_syncs=10))
    pod_clique: Concurrency = Field(default_factory=lambda: Concurrency(concurrent_syncs=10))
    pod_clique_scaling_group: Concurrency = Field(default_factory=lambda: Concurrency(concurrent_syncs=5))
    pod_gang: Concurrency = Field(default_factory=lambda: Concurrency(concurrent_syncs=5))


class Authorizer(K8sModel):
    enabled: bool = True  # ours: on by default (Grove: off); turn off with enabled: false
    exempt_service_account_user_names: list[str] = Field(default_factory=lambda: list(DEFAULT_EXEMPT_USERS))


DEFAULT_INIT_CONTAINER_IMAGE = "grove-py/grove-initc:0.1.0"


def _init_container_image() -> str:
    """Grove's way (GROVE_INIT_CONTAINER_IMAGE, tagged with the operator version) still works."""
    base = os.environ.get(ENV_INIT_CONTAINER_IMAGE)
    return f"{base}:0.1.0" if base else DEFAULT_INIT_CONTAINER_IMAGE


class InitContainer(K8sModel):
    """The grove-initc container the pod webhook adds to pods of cliques with startup dependencies."""

    image: str = Field(default_factory=_init_container_image)


class GangAdmission(K8sModel):
    """Ours (Grove has no such component): the gang admitter that lifts scheduling gates gang by gang."""

    enabled: bool = True
    # An admitted gang whose minimum is not all bound after this long is reset (its unbound pods recreated).
    bind_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    # A gang blocked this long stops newer gangs from passing it, so freed capacity accumulates for it.
    starvation_seconds: Annotated[float, Field(gt=0)] = 60.0


class FeatureToggle(K8sModel):
    enabled: bool = False


class Network(K8sModel):
    auto_mnnvl_enabled: bool = Field(False, alias="autoMNNVLEnabled")


class SchedulerProfile(K8sModel):
    name: Literal["default-scheduler", "kai-scheduler", "volcano", "lpx-scheduler"]
    config: dict[str, Any] | None = None


class Scheduler(K8sModel):
    profiles: list[SchedulerProfile] = Field(default_factory=list)
    default_profile_name: str = "default-scheduler"

    @model_validator(mode="after")
    def _profiles(self) -> Scheduler:
        names = [p.name for p in self.profiles]
        if len(set(names)) != len(names):
            raise ValueError("scheduler.profiles: profile names must be unique")
        if "default-scheduler" not in names:
            self.profiles.append(SchedulerProfile(name="default-scheduler"))
        if self.default_profile_name not in {p.name for p in self.profiles}:
            raise ValueError(
                "scheduler.defaultProfileName: default profile must be one of the configured profiles"
            )
        return self

    @property
    def enabled(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.profiles)


class OperatorConfiguration(K8sModel):
    api_version: str = CONFIG_API_VERSION
    kind: str = CONFIG_KIND
    runtime_client_connection: ClientConnection = Field(default_factory=ClientConnection)
    leader_election: LeaderElection = Field(default_factory=LeaderElection)
    server: Server = Field(default_factory=Server)
    controllers: Controllers = Field(default_factory=Controllers)
    log_level: Literal["debug", "info", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    authorizer: Authorizer = Field(default_factory=Authorizer)
    gang_admission: GangAdmission = Field(default_factory=GangAdmission)
    init_container: InitContainer = Field(default_factory=InitContainer)
    topology_aware_scheduling: FeatureToggle = Field(default_factory=FeatureToggle)
    network: Network = Field(default_factory=Network)
    scheduler: Scheduler = Field(default_factory=Scheduler)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value != CONFIG_KIND:
            raise ValueError(f"kind must be {CONFIG_KIND}")
        return value


def load(path: Path) -> OperatorConfiguration:
    """Read and validate a configuration file (pydantic's errors name the offending field)."""
    data = yaml.safe_load(path.read_text()) or {}
    return OperatorConfiguration.model_validate(data)
