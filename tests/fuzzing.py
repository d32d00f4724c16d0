"""Hypothesis strategies shared by every fuzz test (unit handlers, the webhook server, the real apiserver), so
the documents and AdmissionReviews they try are drawn the same way everywhere and improve in one place.

Sizes: `fuzz_settings(ci)` gives a test its fixed CI profile (derandomized: the same examples on every run,
so a landing is never decided by the draw); `GROVE_FUZZ_EXAMPLES=10000` turns every fuzz test that uses it
into the big, randomized run (docs/admission.md, "Fuzzing").
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from grove_api import constants as c
from tests import builders
from tests.builders import admission_review
from tests.fakes.world import World
from webhook.admission import AdmissionRequest, AdmissionResponse

EXAMPLES_ENV = "GROVE_FUZZ_EXAMPLES"


def fuzz_settings(ci_examples: int) -> settings:
    """`ci_examples` derandomized examples, or `$GROVE_FUZZ_EXAMPLES` fresh ones when that is set."""
    big = os.environ.get(EXAMPLES_ENV)
    return settings(
        max_examples=int(big) if big else ci_examples,
        derandomize=not big,
        deadline=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


# --- any JSON ------------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
DELETE = object()  # "remove this key" in a mutation


def nested(depth: int, leaf: Any = "x") -> Any:
    """`depth` levels of alternating objects and arrays around `leaf`: parsers and walkers that recurse."""
    out = leaf
    for level in range(depth):
        out = {"n": out} if level % 2 else [out]
    return out


def deeply_nested(max_depth: int) -> st.SearchStrategy[Any]:
    """Up to `max_depth` levels (past about 990 the tests' own json.dumps and deepcopy give up)."""
    return st.integers(min_value=1, max_value=max_depth).map(nested)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def mutate(draw: st.DrawFn, doc: Any, count: int) -> Any:
    """`doc` with up to `count` of its nodes replaced by any JSON or (in objects) deleted, in place."""
    for _ in range(count):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc


@st.composite
def mutated_documents(draw: st.DrawFn, seeds: list[Any]) -> Any:
    """One of `seeds`, with one to four nodes replaced or deleted."""
    return mutate(draw, copy.deepcopy(draw(st.sampled_from(seeds))), draw(st.integers(1, 4)))


# --- PodCliqueSets ---------------------------------------------------------------------------------------


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` about four times in five: a faulty document breaks a rule or two, not one in every field, so
    the rules past the first are reached."""
    return st.one_of(valid, valid, valid, valid, other)


dns_labels = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
long_labels = st.integers(12, 30).map(lambda n: "l" * n)  # near the 45-character budget, two of them past it
# names that break a rule: characters, case, length (the 45-character budget and the 63 of a label)
odd_names = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True),
    st.integers(20, 70).map(lambda n: "n" * n),
)
# replica counts: the planner makes this many of things, so they stay small
good_counts = st.integers(1, 3)
odd_counts = st.none() | st.integers(-1, 0)
STARTUP_TYPES = ["CliqueStartupTypeAnyOrder", "CliqueStartupTypeInOrder", "CliqueStartupTypeExplicit"]
DELAYS = ["30s", "0s", "-1h", "soon"]
# ClusterTopologyBinding names: the one the fuzz tests create (TOPOLOGY_LEVELS), one that does not exist,
# and names no object can have (they end up in the URL of the webhook's read)
TOPOLOGY = "fuzz-topology"
TOPOLOGY_LEVELS = {
    "zone": "topology.kubernetes.io/zone",
    "block": "topology.grove.io/block",
    "rack": "topology.grove.io/rack",
    "host": "kubernetes.io/hostname",
}
topology_names = mostly(
    st.sampled_from([TOPOLOGY, TOPOLOGY, "missing"]),
    st.sampled_from(["..", "a/b", "x?y=1", "%zz", "a b", "#", "", "UPPER", "t" * 300]) | st.text(max_size=10),
)
domains = mostly(st.sampled_from(list(TOPOLOGY_LEVELS)), st.sampled_from(["galaxy", "", "Zone"]))
# annotations around the 256 KiB limit
big_values = st.integers(0, 300 * 1024).map(lambda n: "v" * n)


@dataclass(frozen=True)
class Shape:
    """How a generated PodCliqueSet goes wrong, if at all: its fields' strategies."""

    names: st.SearchStrategy[str]
    counts: st.SearchStrategy[int | None]
    max_cliques: int
    faulty: bool  # rules broken here and there, references to what does not exist, nodes replaced

    def odd(self, valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return mostly(valid, other) if self.faulty else valid


SHAPES = [
    Shape(dns_labels, good_counts, 4, faulty=False),
    Shape(dns_labels, good_counts, 4, faulty=False),
    Shape(mostly(dns_labels, odd_names), mostly(good_counts, odd_counts), 4, faulty=True),
    Shape(st.one_of(dns_labels, long_labels), good_counts, 30, faulty=False),  # oversized
]


@st.composite
def topology_constraints(draw: st.DrawFn, shape: Shape, domain: str) -> dict[str, Any]:
    """A constraint for a PodCliqueSet, scaling group or clique: on `domain` everywhere in a well-formed
    document (so no level is narrower than one it encloses)."""
    pack = {"required": draw(shape.odd(st.just(domain), domains))}
    if draw(st.booleans()):
        pack["preferred"] = draw(shape.odd(st.just(domain), domains))
    out: dict[str, Any] = {"pack": pack}
    if not shape.faulty or draw(st.booleans()):  # inherited, or missing where there is none to inherit
        out["topologyName"] = draw(shape.odd(st.just(TOPOLOGY), topology_names))
    return out


@st.composite
def cliques(
    draw: st.DrawFn, shape: Shape, name: str, others: list[str], startup: Any, domain: str
) -> dict[str, Any]:
    replicas = draw(shape.counts)
    extra: dict[str, Any] = {}
    if draw(st.integers(0, 5)) == 0:
        low = draw(shape.odd(st.just(replicas), shape.counts))
        extra["autoscaling"] = {"minReplicas": low, "maxReplicas": draw(shape.odd(st.just(3), shape.counts))}
    earlier = others[: others.index(name)] if name in others else []  # no cycles when not faulty
    after = st.lists(st.sampled_from(earlier), max_size=2, unique=True) if earlier else st.none()
    if draw(st.integers(0, 3)) == 0:
        extra["topologyConstraint"] = draw(topology_constraints(shape, domain))
    return builders.clique(
        name,
        replicas=replicas,
        min_available=draw(shape.odd(st.just(replicas), shape.counts)),
        role=draw(shape.odd(st.just(name), shape.names)),
        starts_after=draw(
            shape.odd(
                after if startup == "CliqueStartupTypeExplicit" else st.none(),
                st.lists(st.sampled_from([*others, "", "ghost"]), max_size=3),
            )
        ),
        **extra,
    )


@st.composite
def podcliquesets(draw: st.DrawFn, prefix: str, namespace: str) -> dict[str, Any]:
    """A PodCliqueSet whose name starts with `prefix` (callers make it unique): well-formed half of the time
    (so the planner gets work), faulty (rules broken here and there, nodes replaced by any JSON) or oversized
    (many cliques, long names, big annotations) a quarter each; now and then with deeply nested junk."""
    shape = draw(st.sampled_from(SHAPES))
    domain = draw(st.sampled_from(list(TOPOLOGY_LEVELS)))
    clique_names = draw(st.lists(shape.names, min_size=1, max_size=shape.max_cliques, unique=True))
    startup = draw(shape.odd(st.sampled_from(STARTUP_TYPES), st.none() | st.just("Whenever")))
    members = st.lists(st.sampled_from(clique_names), min_size=1, max_size=3, unique=True)
    group = st.builds(
        builders.group,
        shape.names,
        shape.odd(members, st.lists(st.sampled_from([*clique_names, "ghost"]), max_size=3)),
        replicas=shape.counts,
        min_available=shape.odd(st.just(1), shape.counts),
        topologyConstraint=topology_constraints(shape, domain),
    )
    groups = st.lists(st.one_of(group, st.builds(builders.group, shape.names, members)), max_size=1)
    big = shape.max_cliques > 4
    extra: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        extra["topologyConstraint"] = {
            **draw(topology_constraints(shape, domain)),
            "topologyName": draw(shape.odd(st.just(TOPOLOGY), topology_names)),
        }
    template = builders.pcs(
        prefix + draw(shape.names),
        namespace=namespace,
        cliques=[draw(cliques(shape, n, clique_names, startup, domain)) for n in clique_names],
        groups=draw(st.none() | shape.odd(groups, st.lists(group, max_size=2))),
        startup=startup,
        replicas=draw(st.integers(0, 2)),
        termination_delay=draw(shape.odd(st.just("4h"), st.none() | st.sampled_from(DELAYS))),
        metadata={"labels": {"fuzz": "yes"}, "annotations": {"note": draw(big_values) if big else "x"}},
        **extra,
    )
    if draw(st.integers(0, 9)) == 0:  # the apiserver prunes it (not in the schema): our webhooks never see it
        template["spec"]["template"]["cliques"][0]["spec"]["podSpec"]["x-nested"] = draw(deeply_nested(200))
    # a copy: the builders share nested constants (the toleration) between documents
    template = copy.deepcopy(template)
    return mutate(draw, template, draw(st.integers(0, 3))) if shape.faulty else template


# --- AdmissionReviews ----------------------------------------------------------------------------------

REVIEW_PATHS: list[tuple[str, ...]] = [
    (),
    ("apiVersion",),
    ("kind",),
    ("request",),
    ("request", "uid"),
    ("request", "operation"),
    ("request", "kind"),
    ("request", "kind", "kind"),
    ("request", "resource"),
    ("request", "subResource"),
    ("request", "name"),
    ("request", "namespace"),
    ("request", "userInfo"),
    ("request", "userInfo", "username"),
    ("request", "userInfo", "groups"),
    ("request", "object"),
    ("request", "object", "metadata"),
    ("request", "object", "metadata", "labels"),
    ("request", "object", "metadata", "name"),
    ("request", "object", "metadata", "namespace"),
    ("request", "object", "spec"),
    ("request", "object", "spec", "replicas"),
    ("request", "object", "spec", "template"),
    ("request", "object", "spec", "levels"),
    ("request", "object", "spec", "containers"),
    ("request", "oldObject"),
    ("request", "oldObject", "metadata", "labels"),
    ("request", "dryRun"),
    ("request", "options"),
    ("response",),
]
OPERATIONS = ["CREATE", "UPDATE", "DELETE", "CONNECT"]


def valid_review(obj: dict[str, Any], uid: str, operation: str) -> dict[str, Any]:
    """The AdmissionReview the apiserver would send for `operation` on `obj` (an admin's request)."""
    return admission_review(
        None if operation == "DELETE" else obj,
        operation=operation,
        old=obj if operation in ("UPDATE", "DELETE") else None,
        uid=uid,
        username="system:admin",
        groups=("system:masters",),
    )


def apply_mutation(review: Any, path: tuple[str, ...], value: Any) -> Any:
    """Set (or delete) `path` in the review, creating nothing: parents of the wrong type are skipped."""
    if not path:
        return review if value is DELETE else value
    parent = review
    for key in path[:-1]:
        if not isinstance(parent, dict) or key not in parent:
            return review
        parent = parent[key]
    if not isinstance(parent, dict):
        return review
    if value is DELETE:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return review


@st.composite
def mutated_review_documents(draw: st.DrawFn, sample: dict[str, Any]) -> Any:
    """A review of `sample` with up to four of its fields replaced by any JSON or removed."""
    uid = draw(st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=30)))
    review: Any = valid_review(copy.deepcopy(sample), uid, draw(st.sampled_from(OPERATIONS)))
    mutations = draw(
        st.lists(
            st.tuples(
                st.sampled_from(REVIEW_PATHS), st.one_of(st.just(DELETE), json_values, deeply_nested(900))
            ),
            max_size=4,
        )
    )
    for path, value in mutations:
        review = apply_mutation(review, path, value)
    return review


@st.composite
def mutated_reviews(draw: st.DrawFn, sample: dict[str, Any]) -> bytes:
    """`mutated_review_documents` serialized, now and then cut short with junk appended."""
    text = json.dumps(draw(mutated_review_documents(sample)))
    if draw(st.booleans()):
        return text.encode()
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    return text[:cut].encode() + draw(st.binary(max_size=8))


# --- samples of every kind a webhook is called for ------------------------------------------------------

MANAGED = {c.LABEL_MANAGED_BY: c.MANAGED_BY_VALUE}


def managed_object(kind: str, api_version: str, part_of: str, namespace: str) -> dict[str, Any]:
    """An object of `kind` as the operator labels what it creates for PodCliqueSet `part_of`."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": f"{part_of}-0-a",
            "namespace": namespace,
            "labels": {**MANAGED, c.LABEL_PART_OF: part_of},
        },
        "spec": {"replicas": 1},
    }


def gang_pod(part_of: str, namespace: str) -> dict[str, Any]:
    """A pod the operator creates for a PodGang (the pod webhook's subject)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{part_of}-0-a-",
            "namespace": namespace,
            "labels": {**MANAGED, c.LABEL_PART_OF: part_of, c.LABEL_PODGANG: f"{part_of}-0"},
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def topology_binding(name: str, levels: dict[str, str]) -> dict[str, Any]:
    """A ClusterTopologyBinding with `levels` (domain -> node label key), broadest first."""
    return {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": "ClusterTopologyBinding",
        "metadata": {"name": name},
        "spec": {"levels": [{"domain": d, "key": k} for d, k in levels.items()]},
    }


# --- what every answer must satisfy ---------------------------------------------------------------------

# "spec.template.cliques[1].spec.minAvailable: Invalid value: …", one per error, "[…, …]" around several,
# after "… denied the request: " or "PodCliqueSet.grove.io "x" is invalid: " when the apiserver passes it on
FIELD_ERROR = re.compile(r"(?:^|\[|, |: )(?:metadata|spec|object|oldObject)[^\s:]*: ")


def has_field_path(message: str) -> bool:
    return FIELD_ERROR.search(message) is not None


def check_answer(
    request: AdmissionRequest, response: AdmissionResponse, *, field_paths: bool
) -> dict[str, Any] | None:
    """An allow whose patch applies to the object (else the apiserver fails the request with a 500), or a
    4xx refusal that says why: at a field path when the object is invalid (422) and the handler validates
    fields. Returns the object as admitted (patched), None when refused."""
    if not response.allowed:
        assert 400 <= response.code < 500, (response.code, response.message)
        assert response.message
        if field_paths and response.code == 422:
            assert has_field_path(response.message), response.message
        return None
    obj = request.object or {}
    return jsonpatch.apply_patch(obj, response.patch) if response.patch else obj


def plan_stored(obj: dict[str, Any], passes: int = 2) -> None:
    """Plan a stored PodCliqueSet as the reconciler would and apply the actions to an in-memory world,
    `passes` times (the second pass plans the pods of the PodCliques the first created)."""
    world = World(gang_admission=True)
    stored = world.put(obj)
    for _ in range(passes):
        world.step(stored["metadata"].get("namespace", ""), stored["metadata"]["name"])
