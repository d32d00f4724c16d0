"""The operator's controllers: from a PodCliqueSet, its PodCliques, scaling groups, PodGangs, pods,
Services and RBAC; status; scaling; cascade delete; and the gang admitter."""
