"""grove-initc: the init container that holds a pod until its parent cliques have their minimum Ready.

`readiness` is the pure core (flags, which pods count, when the wait is over); `main` the I/O around it
(docs/startup-ordering.md).
"""
