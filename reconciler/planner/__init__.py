"""Pure decisions of the reconciler: from a snapshot of a PodCliqueSet and its children to actions.

Nothing here does I/O or imports a Kubernetes client (tests/unit/test_layers.py); the executor
(reconciler/executor.py) carries the actions out. Every kind of child, and how it is planned: registry.py.
"""
