#!/usr/bin/env bash
# Installs the cluster's autoscalers with Helm at pinned chart versions, then the worker
# NodePool: Karpenter (nodes) and KEDA (agents). Run once per cluster, after
# `eksctl create cluster` (docs/deploy-aws.md). Needs helm 3.8+ (OCI charts), kubectl, aws.
#
#   CLUSTER_NAME=htcgrid AWS_REGION=us-east-1 compute/eks/cluster/install-addons.sh
set -euo pipefail

# Pinned: bump deliberately, then re-run scripts/lint-k8s.sh (the ScaledObject is checked
# against KEDA's CRD in ../shared/schemas, the NodePool against Karpenter v1 schemas).
KARPENTER_VERSION="1.8.0"
KEDA_VERSION="2.18.0"

CLUSTER_NAME="${CLUSTER_NAME:-htcgrid}"
AWS_REGION="${AWS_REGION:?set AWS_REGION}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"

# Karpenter's controller runs on the system node group (its Pod Identity association was made
# by eksctl.yaml); it learns spot interruptions from the SQS queue of its CloudFormation stack.
helm upgrade --install karpenter oci://public.ecr.aws/karpenter/karpenter \
    --version "$KARPENTER_VERSION" \
    --namespace kube-system \
    --set "settings.clusterName=$CLUSTER_NAME" \
    --set "settings.interruptionQueue=$CLUSTER_NAME" \
    --set controller.resources.requests.cpu=500m \
    --set controller.resources.requests.memory=512Mi \
    --set controller.resources.limits.memory=512Mi \
    --set-string "nodeSelector.htcgrid\.io/pool=system" \
    --wait

# KEDA reads the queues with its operator's own identity (Pod Identity association in
# compute/eks/worker-role.yaml, service account keda/keda-operator).
helm repo add kedacore https://kedacore.github.io/charts --force-update >/dev/null
helm upgrade --install keda kedacore/keda \
    --version "$KEDA_VERSION" \
    --namespace keda --create-namespace \
    --set-string "nodeSelector.htcgrid\.io/pool=system" \
    --wait

# The worker capacity (spot first, on-demand fallback, consolidation).
kubectl apply -k "$ROOT/compute/eks/manifests/karpenter"
