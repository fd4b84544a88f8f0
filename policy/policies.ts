// The rules of rules.ts as @pulumi/policy policies, all mandatory. The prod-only rules read the
// policy config `environment`: "prod" unless a run says otherwise (dev runs pass dev.json), so a
// run that forgets its config is held to the stricter standard.

import {
  PolicyResource,
  ResourceValidation,
  ResourceValidationPolicy,
  StackValidation,
  StackValidationPolicy,
} from "@pulumi/policy";
import {
  Environment,
  Resource,
  Violation,
  bucketNotPublic,
  controlPlaneQuorum,
  noExternalIpOnNodes,
  noWorldOpenSensitivePorts,
  nodeMachineTypeBigEnough,
  shieldedVm,
} from "./rules";

export type { ResourceValidationArgs, StackValidationArgs } from "@pulumi/policy";

const configSchema = {
  properties: { environment: { type: "string" as const, enum: ["dev", "prod"], default: "prod" } },
};

function resourcePolicy(
  name: string,
  description: string,
  rule: (r: Resource, env: Environment) => Violation[],
): ResourceValidationPolicy & { validateResource: ResourceValidation } {
  return {
    name,
    description,
    enforcementLevel: "mandatory",
    configSchema,
    validateResource: (args, reportViolation) => {
      const env = args.getConfig<{ environment?: Environment }>().environment ?? "prod";
      for (const v of rule({ type: args.type, name: args.name, props: args.props }, env)) reportViolation(v.message);
    },
  };
}

export const resourcePolicies: (ResourceValidationPolicy & { validateResource: ResourceValidation })[] = [
  resourcePolicy(
    "no-world-open-sensitive-ports",
    "prod: no firewall rule opens 22, 6443, 2379-2380 or 10250 to 0.0.0.0/0",
    noWorldOpenSensitivePorts,
  ),
  resourcePolicy(
    "node-machine-type",
    "control planes and workers have at least 2 vCPU and 4 GB",
    nodeMachineTypeBigEnough,
  ),
  resourcePolicy("no-external-ip-on-nodes", "control planes and workers have no external IP", noExternalIpOnNodes),
  resourcePolicy("shielded-vm", "every VM is a Shielded VM", shieldedVm),
  resourcePolicy(
    "bucket-not-public",
    "every bucket (the etcd snapshots) has public access prevention enforced and uniform bucket-level access",
    bucketNotPublic,
  ),
];

export const stackPolicy: StackValidationPolicy & { validateStack: StackValidation } = {
  name: "control-plane-quorum",
  description: "prod: an odd number of control planes, at least 3",
  enforcementLevel: "mandatory",
  configSchema,
  validateStack: (args, reportViolation) => {
    const env = args.getConfig<{ environment?: Environment }>().environment ?? "prod";
    const resources = args.resources.map((r: PolicyResource) => ({ type: r.type, name: r.name, props: r.props }));
    for (const v of controlPlaneQuorum(resources, env)) reportViolation(v.message);
  },
};
