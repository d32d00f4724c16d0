"""The Kubernetes layer: the project's client of the apiserver, used by the reconciler, the gang admitter,
grove-initc, the operator and the local cluster. It imports nothing of this project but the pure API
package (`grove_api`) and knows nothing of the planner or the admitter.

- `resources`: (apiVersion, kind) -> REST collection facts.
- `client`: `KubeClient`, a facade (get, list, watch, create, apply, delete, status writes) over one shared
  ApiClient, raw dicts in and out, errors mapped to `KubeError` subclasses.
- `informer`: `Informer`, list + watch into a cache with a label index and any number of handlers;
  410 -> relist with synthesised events. `informers`: `InformerFactory`, one informer per kind per process.
- `workqueue`: `WorkQueue` (dedupe, delayed and rate-limited re-adds) and `run_workers`.
- `tombstones`: children deleted whose deletion the cache has not shown yet.
- `events`: core v1 Events. `logs`: JSON log lines.
"""
