"""Gang admitter: lifts Grove's scheduling gate only for whole gangs, so the stock kube-scheduler never holds
a partial PodGang. docs/gang-admission.md tells how.

`admitter.core` is the pure decision core (no I/O, no asyncio): it is fed Kubernetes JSON from informer
caches and returns decisions. Around it, the only modules that talk to the apiserver, one job each:

* `controller`: `Admitter`, the loop: one admission pass per burst of events; composes the modules below.
* `feed`: informer events into the core's `ClusterModel` (capacity growth, priorities, touched gangs).
* `on_create`: admission on create, asked in-process by the reconciler before it creates a new gang's pods.
* `executor`: carrying a decision out: admit (record, then release), release, reset, un-admit.
* `status`: the PodGang status (phase, Admitted, Initialized), its writers, de-duplication and rate limits.
* `events`: Events, grouped per PodCliqueSet.
* `objects`: small readers of Kubernetes JSON those modules share.

The PodGang vocabulary (phases, condition types, reasons) is the API package's: `grove_api.podgang`.
"""
