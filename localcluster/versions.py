"""Pinned component versions.

They are pinned together because they were verified as a working set (docs/local-cluster.md, "The
control-plane binaries"): older etcd releases lack RequestWatchProgress, which makes KWOK's watches fail.
Bumping one version changes the binary cache folder, so old and new never mix.
"""

from __future__ import annotations

K8S_VERSION = "v1.36.3"
# Kubernetes' staging modules (k8s.io/api, client-go, ...) are published as v0.<minor>.<patch>.
STAGING_VERSION = "v0." + K8S_VERSION.removeprefix("v1.")
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.7.0"

K8S_BINARIES = ("kube-apiserver", "kube-scheduler", "kube-controller-manager")
ALL_BINARIES = ("etcd", *K8S_BINARIES, "kwok")


def bin_dir_name() -> str:
    """Name of the cache subfolder holding this exact set of binaries."""
    return f"bin-k8s-{K8S_VERSION}-etcd-{ETCD_VERSION}-kwok-{KWOK_VERSION}"


# Helm, for the chart tests and the release manifest (not part of the cluster): built like the rest.
HELM_VERSION = "v4.3.2"
HELM_PACKAGE = "helm.sh/helm/v4/cmd/helm"
