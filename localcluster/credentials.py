"""Per-cluster PKI and kubeconfig.

Every cluster gets its own CA so clusters (a developer's and a test run's) never trust each other, and
so the same CA can later sign webhook serving certificates. Clients authenticate with an admin client
certificate in `system:masters`, which works with RBAC/Node authorization without bootstrapping anything.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml

from certs.pki import KeyPair, issue, new_ca, new_rsa_key_pair
from localcluster.securefile import PRIVATE, write_atomic

VALIDITY = dt.timedelta(days=365)
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
APISERVER_IPS = ("127.0.0.1", "10.96.0.1")
CONTEXT = "grove-local"


@dataclass(frozen=True)
class Credentials:
    """Paths of the PEM files a cluster uses (all under `<state>/pki`)."""

    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path

    def component(self, user: str) -> tuple[Path, Path]:
        """Client certificate and key of a control-plane component identity (see COMPONENT_USERS)."""
        stem = user.replace("system:", "")
        return self.ca_cert.parent / f"{stem}.crt", self.ca_cert.parent / f"{stem}.key"

    @classmethod
    def in_dir(cls, pki: Path) -> Credentials:
        return cls(
            ca_cert=pki / "ca.crt",
            ca_key=pki / "ca.key",
            apiserver_cert=pki / "apiserver.crt",
            apiserver_key=pki / "apiserver.key",
            admin_cert=pki / "admin.crt",
            admin_key=pki / "admin.key",
            sa_key=pki / "sa.key",
            sa_pub=pki / "sa.pub",
        )


# Control-plane components run as their own users, bound by the apiserver's bootstrap RBAC (as on kubeadm
# clusters), not as the admin: the operator's managed-resource protection tells them apart from a user
# (system:kube-controller-manager is exempt, so its token controller can fill grove-initc's Secrets).
COMPONENT_USERS = ("system:kube-controller-manager", "system:kube-scheduler")


def _write(path: Path, data: bytes, private: bool = False) -> None:
    write_atomic(path, data, mode=PRIVATE if private else 0o644)


def generate(pki: Path) -> Credentials:
    """Write a fresh CA, apiserver serving cert, admin client cert and service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    creds = Credentials.in_dir(pki)
    ca = new_ca("grove-local-ca", valid_for=VALIDITY)
    serving = issue(
        ca,
        "kube-apiserver",
        valid_for=VALIDITY,
        dns_names=APISERVER_DNS_NAMES,
        ip_addresses=APISERVER_IPS,
        server=True,
    )
    admin = issue(ca, "admin", organization="system:masters", valid_for=VALIDITY, server=False, client=True)
    sa_private, sa_public = new_rsa_key_pair()
    pairs: list[tuple[KeyPair, Path, Path]] = [
        (ca, creds.ca_cert, creds.ca_key),
        (serving, creds.apiserver_cert, creds.apiserver_key),
        (admin, creds.admin_cert, creds.admin_key),
    ]
    for user in COMPONENT_USERS:
        pair = issue(ca, user, valid_for=VALIDITY, server=False, client=True)
        pairs.append((pair, *creds.component(user)))
    for pair, cert_path, key_path in pairs:
        _write(cert_path, pair.cert_pem)
        _write(key_path, pair.key_pem, private=True)
    _write(creds.sa_key, sa_private, private=True)
    _write(creds.sa_pub, sa_public)
    return creds


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig(server: str, creds: Credentials, user: str = "admin") -> dict[str, object]:
    """A kubeconfig with the certificates embedded, so it stays valid when copied elsewhere: the admin's, or
    a control-plane component's (`user` one of COMPONENT_USERS)."""
    cert, key = (creds.admin_cert, creds.admin_key) if user == "admin" else creds.component(user)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {"server": server, "certificate-authority-data": _b64(creds.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": _b64(cert),
                    "client-key-data": _b64(key),
                },
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin"}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, server: str, creds: Credentials, user: str = "admin") -> Path:
    """Write a kubeconfig (mode 0600 from the start: it holds a private key)."""
    write_atomic(path, yaml.safe_dump(kubeconfig(server, creds, user), sort_keys=False).encode())
    return path
