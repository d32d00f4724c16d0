"""One informer per kind per process, shared by every controller in it (client-go's shared informer factory):
the reconciler and the gang admitter both watch pods and PodGangs, and each object should be decoded once.

A controller asks the factory for the kinds it needs, with the label selector and index it needs, and adds
its handlers to what it gets. The first request for a kind creates the informer and decides its selector and
transform; whoever composes the controllers (the operator's runtime) asks first for the widest view a kind
needs. A later request must be covered by it: its selector the same or narrower (it then filters what it
reads: the cache may hold more), its index labels added while the informer has not started. A transform
(`Informer.transform`) keeps what its readers read; a later consumer that asks for a transform of its own
gets the first one's, which keeps at least as much.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from grove_api import constants
from kube.informer import Informer, ListWatchClient, Transform
from kube.resources import Resource

Selector = dict[str, str]


def covers(wide: Selector | None, narrow: Selector | None) -> bool:
    """Every object `narrow` selects is selected by `wide` (None selects everything)."""
    if wide is None:
        return True
    return narrow is not None and all(narrow.get(k) == v for k, v in wide.items())


def selects(selector: Selector | None, labels: dict[str, str] | None) -> bool:
    """Whether an object with `labels` matches `selector` (None matches everything)."""
    return selector is None or all((labels or {}).get(k) == v for k, v in selector.items())


class InformerFactory:
    """The informers of one process, by kind."""

    def __init__(self, client: ListWatchClient) -> None:
        self.client = client
        self._informers: dict[Resource, Informer] = {}

    def informer(
        self,
        resource: Resource,
        *,
        label_selector: Selector | None = None,
        transform: Transform | None = None,
        index_labels: Sequence[str] = (constants.LABEL_PART_OF,),
    ) -> Informer:
        """The informer of `resource`, created by the first request (see the module docstring)."""
        existing = self._informers.get(resource)
        if existing is None:
            created = Informer(
                self.client,
                resource,
                label_selector=label_selector,
                transform=transform,
                index_labels=index_labels,
            )
            self._informers[resource] = created
            return created
        wide = existing.label_selector
        if not isinstance(wide, dict | None) or not covers(wide, label_selector):
            raise ValueError(
                f"{resource}: the shared informer selects {wide}, which does not cover {label_selector}"
            )
        existing.add_index(index_labels)
        return existing

    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    async def start(self, timeout: float | None = None) -> None:
        """Start every informer and return once all have listed."""
        await asyncio.gather(*(i.start(timeout) for i in self._informers.values()))

    async def close(self) -> None:
        """Stop every informer and wait until their watches are closed."""
        await asyncio.gather(*(i.close() for i in self._informers.values()))
