"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager)
with KWOK-simulated nodes, built from the Go module proxy and run as detached processes. KWOK runs no
containers: the init runner (`localcluster.initrunner`) executes the one that matters to Grove, grove-initc,
as a local process, and KWOK's pod Stages (`kwok-grove-stages.yaml`) hold the pod until it succeeded.

The public Python API lives in `localcluster.cluster` (up/down/status/load) and `localcluster.nodes`;
the `grove-cluster` console script is `localcluster.cli:main`. `localcluster.operator` runs grove-operator
against it, and `localcluster.hostnode` is a node whose pods really run, from an image's filesystem
(docs/local-cluster.md).
"""
