"""The chaos suite (docs/chaos.md): faults injected while a PodCliqueSet with a scaling group is created,
scaled, rolled and deleted; after each, the namespace is checked against what the spec says must exist
(`invariants`) and the time to converge goes on a scoreboard (`scoreboard`). `make chaos` runs the full
profile on a cluster of its own (tools/chaos.py); tests/e2e/test_chaos.py runs the short one in `make test`."""
