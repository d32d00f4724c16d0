"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager)
with KWOK-simulated nodes, built from the Go module proxy and run as detached processes.

The public Python API lives in `localcluster.cluster` (up/down/status/load) and `localcluster.nodes`;
the `grove-cluster` console script is `localcluster.cli:main`.
"""
