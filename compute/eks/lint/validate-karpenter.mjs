// Validates Karpenter objects (JSON array on stdin) against the NodePool and EC2NodeClass schemas
// that @kubernetes-models/karpenter compiles from Karpenter's CRDs. Run by scripts/lint-k8s.sh
// from the tool directory where package-lock.json was installed (.tools/karpenter).
//
// The compiled schemas accept unknown fields (Kubernetes prunes them rather than reject them),
// so a misspelt optional field passes here; kubectl's strict field validation catches it at
// apply time. Required fields, enums, types, patterns and CEL-free rules are checked.
import { readFileSync } from "node:fs";
import { EC2NodeClass } from "@kubernetes-models/karpenter/karpenter.k8s.aws/v1/EC2NodeClass";
import { NodePool } from "@kubernetes-models/karpenter/karpenter.sh/v1/NodePool";

const models = {
  "karpenter.sh/v1/NodePool": NodePool,
  "karpenter.k8s.aws/v1/EC2NodeClass": EC2NodeClass,
};
const objects = JSON.parse(readFileSync(0, "utf8"));
let failures = 0;
for (const object of objects) {
  const key = `${object.apiVersion}/${object.kind}`;
  const name = `${object.kind}/${object.metadata?.name}`;
  const Model = models[key];
  if (!Model) {
    console.error(`${name}: no Karpenter schema for ${key}`);
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
process.exit(failures ? 1 : 0);
