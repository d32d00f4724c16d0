"""Gang admitter: lifts Grove's scheduling gate only for whole gangs, so the stock kube-scheduler never holds
a partial PodGang.

`admitter.core` is the pure decision core (no I/O, no asyncio): it is fed Kubernetes JSON from informer
caches and returns decisions. The controller that watches the cluster and executes the decisions lives
next to it and is the only part that talks to the apiserver.
"""
