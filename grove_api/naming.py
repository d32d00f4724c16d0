"""Names of the objects Grove generates. Pure string functions: the tutorials' commands depend on them.

Standalone clique:        <pcs>-<i>-<clique>
Scaling group:            <pcs>-<i>-<sg>
Scaling-group clique:     <pcs>-<i>-<sg>-<j>-<clique>
Base PodGang / Service:   <pcs>-<i>
Scaled PodGang:           <pcs>-<i>-<sg>-<j - sg.minAvailable>
"""

from __future__ import annotations

import hashlib

POD_NAME_SUFFIX_LENGTH = 5  # the apiserver's generateName suffix
# The apiserver's generateName alphabet (k8s.io/apimachinery/pkg/util/rand): no vowels, no 0/1/3.
POD_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_NAME_LENGTH = 63


def pcs_replica(pcs: str, replica: int) -> str:
    """`<pcs>-<i>`: the base PodGang and the headless Service of PodCliqueSet replica `i`."""
    return f"{pcs}-{replica}"


def standalone_podclique(pcs: str, replica: int, clique: str) -> str:
    return f"{pcs}-{replica}-{clique}"


def scaling_group(pcs: str, replica: int, group: str) -> str:
    return f"{pcs}-{replica}-{group}"


def scaling_group_podclique(pcs: str, replica: int, group: str, group_replica: int, clique: str) -> str:
    return f"{scaling_group(pcs, replica, group)}-{group_replica}-{clique}"


def base_podgang(pcs: str, replica: int) -> str:
    return pcs_replica(pcs, replica)


def scaled_podgang(pcs: str, replica: int, group: str, group_replica: int, group_min_available: int) -> str:
    """Scaled gangs are numbered from 0 for the first scaling-group replica beyond minAvailable."""
    if group_replica < group_min_available:
        raise ValueError(
            f"scaling-group replica {group_replica} is below minAvailable {group_min_available}: "
            "it belongs to the base PodGang"
        )
    return f"{scaling_group(pcs, replica, group)}-{group_replica - group_min_available}"


def headless_service(pcs: str, replica: int) -> str:
    return pcs_replica(pcs, replica)


def pod_generate_name(podclique: str) -> str:
    return f"{podclique}-"


def pod_name(podclique: str, seed: str) -> str:
    """`<podclique>-<5 chars>`, as generateName would make it, but chosen by us from `seed`: the operator
    knows a pod's name before creating it, so the PodGang can list the pod in the same pass. Like the
    apiserver, the prefix is cut so the name fits 63 characters."""
    digest = hashlib.sha256(seed.encode()).digest()
    suffix = "".join(POD_NAME_ALPHABET[b % len(POD_NAME_ALPHABET)] for b in digest[:POD_NAME_SUFFIX_LENGTH])
    return pod_generate_name(podclique)[: MAX_NAME_LENGTH - POD_NAME_SUFFIX_LENGTH] + suffix


def pod_hostname(podclique: str, pod_index: int) -> str:
    return f"{podclique}-{pod_index}"


def service_account(pcs: str) -> str:
    return pcs


def role(pcs: str) -> str:
    """Role and RoleBinding share this name."""
    return f"grove.io:pcs:{pcs}"


def initc_token_secret(pcs: str) -> str:
    return f"{pcs}-ic-sat"


def combined_name_length(pcs: str, clique: str, group: str | None = None) -> int:
    """The length Grove budgets against MAX_COMBINED_NAME_LENGTH (indices and dashes not counted)."""
    return len(pcs) + len(clique) + (len(group) if group else 0)
