"""OperatorConfiguration (operator.config.grove.io/v1alpha1): the operator's settings file.

Field names and defaults follow Grove's (docs/operations.md, "The configuration file") so a Grove
configuration file loads unchanged;
`server.webhooks.mode`/`host`/`serviceName`/`namespace` are ours (local URL mode vs in-cluster Service mode).
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, field_validator, model_validator

from grove_api.constants import ENV_OPERATOR_IMAGE
from grove_api.models.base import K8sModel
from grove_api.validation.k8s import parse_duration

CONFIG_API_VERSION = "operator.config.grove.io/v1alpha1"
CONFIG_KIND = "OperatorConfiguration"
DEFAULT_NAMESPACE = "grove-system"
# Cluster controllers that delete or update the objects the operator manages in their ordinary work; the
# namespace controller too: deleting a namespace deletes its managed objects, and must not be held up.
DEFAULT_EXEMPT_USERS = (
    "system:serviceaccount:kube-system:generic-garbage-collector",
    "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
    "system:serviceaccount:kube-system:namespace-controller",
    "system:kube-controller-manager",
)


def _seconds(value: Any) -> Any:
    """A Go duration string ("15s", "1m30s", "500ms": what Grove's configuration files hold) in seconds;
    numbers pass through (seconds)."""
    if not isinstance(value, str):
        return value
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a duration: use seconds (15) or a Go duration (15s, 1m30s, 500ms)"
        ) from None


Seconds = Annotated[float, BeforeValidator(_seconds)]


class ClientConnection(K8sModel):
    qps: float = 100.0
    burst: Annotated[int, Field(ge=0)] = 120


class LeaderElection(K8sModel):
    enabled: bool = False
    lease_duration: Seconds = 15.0
    renew_deadline: Seconds = 10.0
    retry_period: Seconds = 2.0
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
    # Left out: the namespace the operator runs in (its ServiceAccount's namespace file), else
    # DEFAULT_NAMESPACE, so an install into any namespace works without naming it twice (`with_namespace`).
    namespace: str = DEFAULT_NAMESPACE
    # Ours: on SIGTERM, keep accepting webhook calls this long while reporting not-ready, so the apiserver
    # stops routing to this replica (EndpointSlice, kube-proxy) before its listener closes. 0: close at once.
    shutdown_delay_seconds: Annotated[Seconds, Field(ge=0)] = 0.0
    # Ours: serve the webhooks from a child process of the operator, so that reconcile and admission passes
    # (hundreds of ms of CPU at 1,000 pods) never hold an admission answer back. false: one process.
    own_process: bool = True


class Endpoint(K8sModel):
    bind_address: str = "0.0.0.0"
    port: int


class HealthProbes(Endpoint):
    port: int = 2751  # so a section that sets only the fields below keeps the default port
    # Ours: /healthz fails once a controller this replica runs has had work waiting for this long without
    # any progress (no pass finished, no event handled): wedged, better restarted. 0 turns the check off.
    liveness_stall_seconds: Annotated[float, Field(ge=0)] = 300.0


class MetricsServer(Endpoint):
    port: int = 2752
    # Ours (controller-runtime's secure metrics serving): HTTPS with the webhook serving certificate, and
    # only callers whose bearer token is allowed `get` on the non-resource URL /metrics (TokenReview +
    # SubjectAccessReview). Off: plain HTTP, anyone who reaches the port may read.
    secure: bool = False


class Server(K8sModel):
    webhooks: WebhookServer = Field(default_factory=WebhookServer)
    health_probes: HealthProbes = Field(default_factory=HealthProbes)
    metrics: MetricsServer = Field(default_factory=MetricsServer)


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


IMAGE_REPOSITORY = "grove-py"
INIT_CONTAINER_COMMAND = ("grove-initc",)


def version() -> str:
    """The installed grove-py version (the image is tagged with it)."""
    try:
        return metadata.version("grove-py")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def operator_image() -> str:
    """The image this operator runs from: `GROVE_OPERATOR_IMAGE` (the chart sets it from the very value it
    gives the container), else the image `make image` builds for this version."""
    return os.environ.get(ENV_OPERATOR_IMAGE) or f"{IMAGE_REPOSITORY}:{version()}"


class InitContainer(K8sModel):
    """The grove-initc container the pod webhook adds to pods of cliques with startup dependencies.

    By default it runs from the operator's own image and tag (one image has both entry points), so the two
    never drift; `image` overrides it (a mirror in a private registry), and `command` is what runs in it
    (empty: the image's own entrypoint, e.g. for an image built with grove-initc as its entrypoint)."""

    image: str = Field(default_factory=operator_image)
    command: list[str] = Field(default_factory=lambda: list(INIT_CONTAINER_COMMAND))


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


def with_namespace(config: OperatorConfiguration, running_in: str) -> OperatorConfiguration:
    """`config` with `server.webhooks.namespace` set to the namespace the operator runs in (`running_in`,
    "" when unknown) when the file does not name one. Everything namespaced that the operator owns
    (certificate Secret, the Service names in the certificate, the lease) then follows the install."""
    hooks = config.server.webhooks
    if "namespace" in hooks.model_fields_set or not running_in:
        return config
    out = config.model_copy(deep=True)
    out.server.webhooks.namespace = running_in
    return out


def load(path: Path) -> OperatorConfiguration:
    """Read and validate a configuration file (pydantic's errors name the offending field)."""
    data = yaml.safe_load(path.read_text()) or {}
    return OperatorConfiguration.model_validate(data)
