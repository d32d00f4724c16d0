"""PodCliqueSet defaulting and validating admission handlers (thin: the rules are in grove_api)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError

from grove_api import constants as c
from grove_api.defaulting import default_patch
from grove_api.fielderrors import FieldError, aggregate, internal, invalid
from grove_api.models import PodCliqueSet
from grove_api.operatorconfig import OperatorConfiguration
from grove_api.validation import Result
from grove_api.validation.podcliqueset import Context, spec_unchanged, validate_create, validate_update
from grove_api.validation.schema import schema_errors
from grove_api.validation.topology import effective_topology_names
from webhook.admission import AdmissionRequest, AdmissionResponse, allow, deny, patched

log = logging.getLogger(__name__)

STORED_SPEC_INVALID = (
    "the stored spec does not pass validation (stored before the webhooks, or by another version): its "
    "metadata may change and it may be deleted, but a change of its spec must make it valid"
)

# ClusterTopologyBinding name -> its level domains (broadest first), or None when it does not exist.
TopologyLookup = Callable[[str], Awaitable[Sequence[str] | None]]
# (namespace, PodCliqueSet name) -> warnings about its child names that objects of someone else's have
NamesLookup = Callable[[str, str], Awaitable[list[str]]]


def _invalid(errors: list[FieldError], warnings: Sequence[str] = ()) -> AdmissionResponse:
    return deny(aggregate(errors), code=422, reason="Invalid", warnings=tuple(warnings))


def _pcs(obj: dict[str, Any] | None, what: str) -> PodCliqueSet | list[FieldError]:
    """The object as a PodCliqueSet model, or the errors that say why it is not one."""
    if obj is None:
        return [invalid(what, None, "expected a PodCliqueSet object, got none")]
    if obj.get("kind") not in (None, c.KIND_PODCLIQUESET):
        return [invalid(f"{what}.kind", obj.get("kind"), f"expected a {c.KIND_PODCLIQUESET} object")]
    try:
        return PodCliqueSet.from_dict(obj)
    except ValidationError as err:
        return schema_errors(err)


class DefaultingHandler:
    """Mutating webhook: fill the defaults (idempotent) and answer with the JSON patch."""

    def __init__(self, config: OperatorConfiguration) -> None:
        self.config = config

    async def __call__(self, request: AdmissionRequest) -> AdmissionResponse:
        if request.operation not in ("CREATE", "UPDATE"):
            return allow()
        parsed = _pcs(request.object, "object")
        if isinstance(parsed, list):
            if request.operation == "UPDATE" and spec_unchanged(request.object, request.old_object):
                return allow(warnings=[STORED_SPEC_INVALID])
            return _invalid(parsed)
        assert request.object is not None
        old = request.old_object if request.operation == "UPDATE" else None
        return patched(default_patch(request.object, old))


class ValidatingHandler:
    """Validating webhook: every rule at once; warnings on allow and on deny."""

    def __init__(
        self, config: OperatorConfiguration, topologies: TopologyLookup, names: NamesLookup | None = None
    ) -> None:
        self.config = config
        self.topologies = topologies
        self.names = names

    async def _lookup(self, pcs: PodCliqueSet) -> dict[str, Sequence[str]] | FieldError:
        found: dict[str, Sequence[str]] = {}
        if not self.config.topology_aware_scheduling.enabled:
            return found
        for name in sorted(effective_topology_names(pcs)):
            try:
                domains = await self.topologies(name)
            except Exception as err:  # the apiserver or the network failed: say so, don't guess
                log.warning("ClusterTopologyBinding lookup failed: %s", err, extra={"topology": name})
                return internal(
                    "spec.template.topologyConstraint.topologyName",
                    f'failed to fetch ClusterTopologyBinding "{name}": {err}',
                )
            if domains is not None:
                found[name] = list(domains)
        return found

    async def review(self, request: AdmissionRequest) -> Result:
        """The decision, as errors and warnings. An update that leaves the spec alone is refused only for what
        the update itself does wrong (e.g. an immutable annotation changed), never for what was wrong with
        the stored spec already: it may predate our rules, and the object must stay manageable."""
        result = await self._review(request)
        if not result.errors or request.operation != "UPDATE":
            return result
        if not spec_unchanged(request.object, request.old_object):
            return result
        assert request.object is not None and request.old_object is not None
        # The same spec, created under the stored metadata: what is wrong with the spec itself.
        stored = await self._validate_create({**request.old_object, "spec": request.object.get("spec")})
        remaining = [e for e in result.errors if e not in stored.errors]
        if remaining:
            return Result(errors=remaining, warnings=result.warnings)
        return Result(warnings=[STORED_SPEC_INVALID, *result.warnings])

    async def _parsed(self, doc: dict[str, Any] | None) -> tuple[PodCliqueSet, Context] | Result:
        """The document as a PodCliqueSet with its validation context, or the errors that stop it."""
        pcs = _pcs(doc, "object")
        if isinstance(pcs, list):
            return Result(errors=pcs)
        found = await self._lookup(pcs)
        if isinstance(found, FieldError):
            return Result(errors=[found])
        return pcs, Context(config=self.config, topologies=found)

    async def _validate_create(self, doc: dict[str, Any] | None) -> Result:
        parsed = await self._parsed(doc)
        return parsed if isinstance(parsed, Result) else validate_create(*parsed)

    async def _review(self, request: AdmissionRequest) -> Result:
        if request.operation == "CREATE":
            return await self._validate_create(request.object)
        parsed = await self._parsed(request.object)
        if isinstance(parsed, Result):
            return parsed
        old = _pcs(request.old_object, "oldObject")
        if isinstance(old, list):
            return Result(errors=old)
        return validate_update(parsed[0], old, parsed[1])

    async def __call__(self, request: AdmissionRequest) -> AdmissionResponse:
        if request.operation not in ("CREATE", "UPDATE"):
            return allow()
        result = await self.review(request)
        if result.errors:
            return _invalid(result.errors, result.warnings)
        if request.operation == "CREATE":
            return allow(warnings=[*result.warnings, *await self._names_taken(request)])
        return allow(warnings=result.warnings)

    async def _names_taken(self, request: AdmissionRequest) -> list[str]:
        """Warnings about names the new PodCliqueSet's children would find taken; none when they cannot be
        read (the reconciler reports a taken name anyway: condition NameConflict)."""
        meta = (request.object or {}).get("metadata") or {}
        name, namespace = meta.get("name"), meta.get("namespace") or request.namespace
        if self.names is None or not name or not namespace:
            return []
        try:
            return await self.names(str(namespace), str(name))
        except Exception as err:
            log.warning("could not check the children's names: %s", err, extra={"podcliqueset": name})
            return []


def defaulting_handler(config: OperatorConfiguration) -> DefaultingHandler:
    return DefaultingHandler(config)


def validating_handler(
    config: OperatorConfiguration, topologies: TopologyLookup, names: NamesLookup | None = None
) -> ValidatingHandler:
    return ValidatingHandler(config, topologies, names)
