#!/usr/bin/env bash
# make demo: a local cluster with fake nodes (built on first use, reused afterwards), Grove's CRDs and
# the tutorial samples applied. The cluster keeps running until `grove-cluster down` (or `make down`).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${GROVE_STATE_DIR:=$PWD/.grove/cluster}"
export GROVE_STATE_DIR

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "local cluster (etcd, kube-apiserver, kube-scheduler, kube-controller-manager, KWOK)"
grove-cluster up --nodes "${DEMO_NODES:-20}"
export KUBECONFIG="$GROVE_STATE_DIR/kubeconfig"

step "grove-operator (webhooks and controllers), restarted so it runs this checkout's code"
grove-cluster operator restart

step "Grove CRDs"
kubectl apply --server-side --force-conflicts -f deploy/helm/grove-py/crds/
kubectl wait --for condition=established --timeout=60s -f deploy/helm/grove-py/crds/ >/dev/null

step "tutorial samples (samples/concept-overview, samples/training)"
kubectl apply -f samples/concept-overview/ -f samples/training/

step "waiting until every PodCliqueSet is available (pods Running on KWOK nodes)"
kubectl wait --for=condition=Available pcs --all --timeout=180s

step "kubectl get pods -l app.kubernetes.io/part-of=comp-inf-ppln -o wide   (the tutorial's 11 pods)"
kubectl get pods -l app.kubernetes.io/part-of=comp-inf-ppln -o wide

step "startup order of dist-train (grove-initc ran for real): Ready time per clique, replica 0"
# parameter-server first, then the coordinator (startsAfter parameter-server), then the workers (startsAfter
# coordinator); the scaled worker replica waits for nothing (docs/startup-ordering.md).
kubectl get pods -l app.kubernetes.io/part-of=dist-train,grove.io/podcliqueset-replica-index=0 \
  -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].lastTransitionTime}{"  "}{.metadata.labels.grove\.io/podclique}{"  "}{.metadata.annotations.grove\.io/startup-dependencies}{"\n"}{end}' |
  sort | awk '{printf "%s  %-50s waits for: %s\n", $1, $2, ($3 == "" ? "-" : $3)}'

step "kubectl get nodes"
kubectl get nodes -L topology.kubernetes.io/zone,topology.grove.io/block,topology.grove.io/rack | awk 'NR<=8'
echo "… $(kubectl get nodes --no-headers | wc -l) nodes"

step "kubectl get grove -A   (every Grove kind: PodCliqueSets, PodCliques, scaling groups, PodGangs)"
kubectl get grove -A

cat <<MSG

The cluster keeps running. Try:
  kubectl explain pcs.spec.template.cliques.spec.startsAfter
  kubectl scale pcs single-node-aggregated --replicas=3
  grove-cluster status        # components, pids, logs
  grove-cluster down          # stop everything
MSG
echo "export KUBECONFIG=$KUBECONFIG"
