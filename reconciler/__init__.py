"""The PodCliqueSet reconciler: from a PodCliqueSet, its PodCliques, scaling groups, PodGangs, pods,
Services, grove-initc's RBAC and HPAs; statuses; scaling; gang termination; rolling updates; cascade delete.
The pure decisions are in `planner/`; `manager.py` runs them over the informers' caches and `executor.py`
carries them out. (The gang admitter is a package of its own, `admitter/`.)"""
