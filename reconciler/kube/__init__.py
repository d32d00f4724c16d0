"""The only package that talks to the apiserver (and imports kubernetes_asyncio).

- `resources`: (apiVersion, kind) → REST collection facts.
- `client`: `KubeClient`, a typed facade (get, list, watch, create, apply, delete, patch_status,
  remove_finalizer) over one shared ApiClient, raw dicts in and out, errors mapped to `KubeError` subclasses.
- `informer`: `Informer`, list + watch into a cache with a label index; 410 → relist with synthesised events.
- `workqueue`: `WorkQueue` (dedupe, delayed and rate-limited re-adds) and `run_workers`.
- `executor`: `Executor` (runs planner actions, pod slow start) and `Expectations`.
"""
