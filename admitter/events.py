"""The gang admitter's Events, grouped per PodCliqueSet where there would be one per gang.

* On a PodGang (`on_podgang`): a gang admitted after it waited, reset, queued again, blocked, its replacement
  pods blocked and released. Warnings go to its PodCliqueSet too (what `kubectl describe pcs` shows).
* On a PodCliqueSet (`admitted`): one `GangsAdmitted` Event for the gangs of it a pass admitted; an Event per
  gang would be 500 writes when a big PodCliqueSet starts, while the scheduler needs the apiserver most.
  Gangs admitted on create are told once all the PodCliqueSet's gangs are on record (`admitted_on_create`).

Losing an Event is not worth failing anything: a refused one is logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from grove_api import constants as c
from kube.client import KubeClient, KubeError
from kube.events import event

from .objects import JSON, log

COMPONENT = "grove-gang-admitter"
REASON_GANGS_ADMITTED = "GangsAdmitted"  # on the PodCliqueSet: the gangs one pass admitted


class GangEvents:
    def __init__(self, client: KubeClient) -> None:
        self.client = client
        # PodCliqueSet uid -> gangs admitted on create put on record (and their pods), not yet told
        self._unreported: dict[str, list[tuple[JSON, int]]] = {}

    async def on_podgang(self, podgang: JSON, type_: str, reason: str, message: str, now: datetime) -> None:
        """On the PodGang; warnings also on its PodCliqueSet (what `kubectl describe pcs` shows)."""
        meta = podgang["metadata"]
        await self._create(
            event(
                {"apiVersion": c.SCHEDULER_API_VERSION, "kind": c.KIND_PODGANG, **podgang},
                type_,
                reason,
                message,
                now,
                component=COMPONENT,
            )
        )
        pcs = podcliqueset_of(podgang)
        if pcs is not None and type_ == "Warning":
            await self._create(
                event(pcs, type_, reason, f"PodGang {meta['name']}: {message}", now, component=COMPONENT)
            )

    async def admitted(self, admitted: list[tuple[JSON, int]], now: datetime, how: str = "released") -> None:
        """One Normal Event per PodCliqueSet for the gangs this pass admitted (or put on record: their
        pods were created pinned); `admitted`: each PodGang and its pods released."""
        by_owner: dict[str, tuple[JSON, list[tuple[str, int]]]] = {}
        for podgang, released in admitted:
            pcs = podcliqueset_of(podgang)
            if pcs is not None:
                gang = (podgang["metadata"]["name"], released)
                by_owner.setdefault(pcs["metadata"]["uid"], (pcs, []))[1].append(gang)
        for pcs, gangs_of_pcs in by_owner.values():
            names = sorted(name for name, _ in gangs_of_pcs)
            pods = sum(released for _, released in gangs_of_pcs)
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            gangs = f"{len(names)} gang{'s' if len(names) != 1 else ''}"
            message = f"{gangs} admitted ({pods} pods {how}): {shown}"
            await self._create(event(pcs, "Normal", REASON_GANGS_ADMITTED, message, now, component=COMPONENT))

    async def admitted_on_create(
        self, recorded: Iterable[tuple[JSON, int]], waiting: set[str], now: datetime
    ) -> None:
        """Gangs admitted on create just put on record (each PodGang and its pods): told in one Event per
        PodCliqueSet once none of its gangs waits to be put on record (`waiting`: their uids)."""
        for done in recorded:
            self._unreported.setdefault(owner_uid(done[0]), []).append(done)
        told = [uid for uid in self._unreported if uid not in waiting]
        gangs = [gang for uid in told for gang in self._unreported.pop(uid)]
        await self.admitted(gangs, now, how="created pinned")

    async def _create(self, body: JSON) -> None:
        try:
            await self.client.create(body)
        except KubeError as err:
            log.warning("could not record an event: %s", err)


def owner_uid(podgang: JSON) -> str:
    pcs = podcliqueset_of(podgang)
    return pcs["metadata"]["uid"] if pcs is not None else ""


def podcliqueset_of(podgang: JSON) -> JSON | None:
    """The PodCliqueSet that controls the PodGang, as an object reference Events can name."""
    meta = podgang["metadata"]
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == c.KIND_PODCLIQUESET and owner.get("controller"):
            return {
                "apiVersion": c.API_VERSION,
                "kind": c.KIND_PODCLIQUESET,
                "metadata": {"name": owner["name"], "namespace": meta["namespace"], "uid": owner["uid"]},
            }
    return None
