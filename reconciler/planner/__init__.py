"""Pure decisions of the reconciler: from a snapshot of a PodCliqueSet and its children to actions.

Nothing here does I/O or imports kubernetes_asyncio; the executor (reconciler/executor.py) carries the actions out.
"""
