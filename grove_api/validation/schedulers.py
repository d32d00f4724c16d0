"""Checks specific to the scheduler backend the cliques use (docs/admission.md, "Scheduler backends").

The stock kube-scheduler ("default-scheduler") needs none: gang admission is ours. KAI needs a queue,
Volcano and LPX take no topology constraints.
"""

from __future__ import annotations

from grove_api.fielderrors import invalid
from grove_api.models.podcliqueset import PodCliqueSet
from grove_api.operatorconfig import OperatorConfiguration

from .result import Result

KAI_QUEUE = "kai.scheduler/queue"
VOLCANO_QUEUE = "scheduling.grove.io/volcano-queue"


def _has_topology(pcs: PodCliqueSet) -> list[str]:
    t = pcs.spec.template
    found = ["PodCliqueSet"] if t.topology_constraint else []
    found += [f"PodClique {q.name!r}" for q in t.cliques or [] if q.topology_constraint]
    found += [
        f"PodCliqueScalingGroup {g.name!r}"
        for g in t.pod_clique_scaling_groups or []
        if g.topology_constraint
    ]
    return found


def validate_backend(pcs: PodCliqueSet, config: OperatorConfiguration, scheduler_names: list[str]) -> Result:
    result = Result()
    if not scheduler_names:
        return result
    backend = scheduler_names[0]
    ns, name = pcs.metadata.namespace, pcs.metadata.name
    if backend == "kai-scheduler":
        meta_labels, meta_ann = pcs.metadata.labels or {}, pcs.metadata.annotations or {}
        pcs_queue = meta_labels.get(KAI_QUEUE) or meta_ann.get(KAI_QUEUE)
        clique_queues = {
            q.name: (q.labels or {}).get(KAI_QUEUE) or (q.annotations or {}).get(KAI_QUEUE)
            for q in pcs.spec.template.cliques or []
        }
        set_queues = {n: v for n, v in clique_queues.items() if v}
        if pcs_queue:
            for clique, queue in set_queues.items():
                if queue != pcs_queue:
                    result.errors.append(
                        invalid(
                            "spec",
                            clique,
                            f"KAI queue on PodCliqueSet {ns}/{name} is {pcs_queue!r} but PodClique template {clique!r} resolves to {queue!r}",
                        )
                    )
        elif not set_queues:
            result.errors.append(
                invalid(
                    "metadata.labels",
                    KAI_QUEUE,
                    f"no KAI queue is configured on PodCliqueSet {ns}/{name} or its PodClique templates (set the {KAI_QUEUE} label)",
                )
            )
        elif len(set(set_queues.values())) > 1:
            result.errors.append(
                invalid(
                    "spec",
                    sorted(set(set_queues.values())),
                    f"conflicting KAI queues on PodCliqueSet {ns}/{name} PodClique templates",
                )
            )
    elif backend in ("volcano", "lpx-scheduler"):
        for where in _has_topology(pcs):
            result.errors.append(
                invalid(
                    "spec.template",
                    where,
                    f"the {backend} scheduler backend does not support topologyConstraint (found on {where})",
                )
            )
        if backend == "volcano":
            queues = {(q.annotations or {}).get(VOLCANO_QUEUE) for q in pcs.spec.template.cliques or []}
            queues.add((pcs.metadata.annotations or {}).get(VOLCANO_QUEUE))
            queues.discard(None)
            if len(queues) > 1:
                result.errors.append(
                    invalid(
                        "metadata.annotations",
                        sorted(q for q in queues if q),
                        "all PodCliques in a PodCliqueSet using volcano scheduler must resolve to the same queue",
                    )
                )
    return result
