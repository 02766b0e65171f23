// Validates prometheus-operator objects (JSON array on stdin) against the schemas that
// @kubernetes-models/prometheus-operator compiles from the operator's CRDs (the monitoring
// component's PodMonitor). Run by scripts/lint-k8s.sh from the tool directory where
// package-lock.json was installed (.tools/karpenter), like validate-karpenter.mjs.
//
// The compiled schemas accept unknown fields (Kubernetes prunes them rather than reject them),
// so a misspelt optional field passes here; kubectl's strict field validation catches it at
// apply time. Required fields, types, enums and patterns (durations, ports) are checked.
import { readFileSync } from "node:fs";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";

const models = { "monitoring.coreos.com/v1/PodMonitor": PodMonitor };
const objects = JSON.parse(readFileSync(0, "utf8"));
let failures = 0;
for (const object of objects) {
  const key = `${object.apiVersion}/${object.kind}`;
  const name = `${object.kind}/${object.metadata?.name}`;
  const Model = models[key];
  if (!Model) {
    console.error(`${name}: no prometheus-operator schema for ${key}`);
    failures += 1;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`  ${name}: valid`);
  } catch (error) {
    console.error(`${name}: ${error.message}`);
    failures += 1;
  }
}
if (objects.length === 0) {
  console.error("no prometheus-operator objects rendered: the monitoring component is in no overlay");
  failures += 1;
}
process.exit(failures ? 1 : 0);
