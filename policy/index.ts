// pulumi preview --policy-pack ./policy --policy-pack-config ./policy/<dev|prod>.json (prod rules by default)
// Only wiring: the policies live in policies.ts and rules.ts (tested without starting the pack).
import { PolicyPack } from "@pulumi/policy";
import { resourcePolicies, stackPolicy } from "./policies";

new PolicyPack("ha-k8s", { policies: [...resourcePolicies, stackPolicy] });
