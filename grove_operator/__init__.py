"""grove-operator: the process that serves the admission webhooks and runs the controllers.

`main` is the entry point; `runtime` composes the process (certificates, webhook server, caBundle injection,
the reconciler and the gang admitter on shared informers, graceful shutdown); `leader` is Lease-based leader
election; `health`, `liveness`, `metrics` and `metricsauth` the probes and /metrics; `apicalls` the few API
calls of its own; `identity` the username it acts as.
"""
