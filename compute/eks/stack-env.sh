#!/usr/bin/env bash
# Writes a kustomize env file (the agents' HTCGRID_* settings and the task queue URLs KEDA
# watches) from a deployed control plane stack's outputs:
#   compute/eks/stack-env.sh htcgrid > compute/eks/manifests/overlays/dev/stack.env
set -euo pipefail
STACK="${1:?usage: stack-env.sh STACK_NAME}"
REGION="${AWS_REGION:-$(aws configure get region)}"

outputs="$(aws cloudformation describe-stacks --region "$REGION" --stack-name "$STACK" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text)"
output() { awk -v key="$1" '$1 == key { print $2 }' <<<"$outputs"; }

echo "# From stack $STACK ($REGION) by compute/eks/stack-env.sh on $(date -u +%Y-%m-%dT%H:%MZ)."
echo "HTCGRID_TABLE_NAME=$(output TaskTableName)"
echo "HTCGRID_BUCKET_NAME=$(output DataBucketName)"
echo "HTCGRID_QUEUE_PREFIX=$(output QueuePrefix)"
echo "HTCGRID_PRIORITY_LEVELS=$(output PriorityLevels)"
echo "HTCGRID_MAX_ATTEMPTS=$(output MaxAttempts)"
echo "HTCGRID_LEASE_DURATION_S=$(output LeaseDurationSeconds)"
echo "HTCGRID_INLINE_THRESHOLD_BYTES=$(output InlinePayloadThresholdBytes)"
echo "HTCGRID_RETRY_WORKFLOW_ARN=$(output RetryWorkflowArn)"
echo "HTCGRID_MAX_RECEIVE_COUNT=$(output MaxReceiveCount)"
# Stacks that output it: the agents' session counters expire with the stack's retention.
retention="$(output ResultRetentionDays)"
if [[ -n "$retention" ]]; then
    echo "HTCGRID_RESULT_RETENTION_DAYS=$retention"
fi
echo "HTCGRID_REGION=$REGION"
levels="$(output PriorityLevels)"
for ((level = 0; level < levels; level++)); do
    echo "HTCGRID_TASK_QUEUE_URL_P$level=$(output "TaskQueueUrlP$level")"
done
