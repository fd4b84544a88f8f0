// Refuses unsafe transitions by reading this stack's own previous outputs (a StackReference to
// itself: pulumi/pulumi#3722). A refusal fails `pulumi preview` and `pulumi up` before the engine
// deletes anything: Pulumi deletes resources that left the program only after the program succeeded.

import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../render/config";
import { ImmutableSettings, controlPlaneChangeProblem, immutableSettingsProblems } from "../render/changes";

export interface GuardedOutputs {
  /** Read back by the next deployment. */
  readonly controlPlaneCount: pulumi.Output<number>;
  readonly immutableSettings: pulumi.Output<ImmutableSettings>;
}

/** Outputs that resolve when the change from the previous deployment is allowed, and fail with the reasons otherwise. */
export function guardChanges(config: ClusterConfig): GuardedOutputs {
  const self = new pulumi.StackReference("previous-deployment", {
    name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`,
  });
  const settings: ImmutableSettings = {
    clusterName: config.clusterName,
    region: config.region,
    subnetCidr: config.subnetCidr,
    podCidr: config.podCidr,
    serviceCidr: config.serviceCidr,
  };
  const problems = pulumi
    .all([self.getOutput("controlPlaneCount"), self.getOutput("immutableSettings")])
    .apply(([previousCount, previousSettings]: unknown[]) => {
      const found = immutableSettingsProblems(previousSettings as Partial<ImmutableSettings> | undefined, settings);
      const scale = controlPlaneChangeProblem(
        typeof previousCount === "number" ? previousCount : undefined,
        config.controlPlaneCount,
      );
      return scale ? [...found, `ha-k8s:controlPlaneCount: ${scale}`] : found;
    });
  // Each exported output fails on its own, so the failure reaches the engine through the outputs.
  const unlessRefused = <T>(value: T) =>
    problems.apply((list) => {
      if (list.length > 0) throw new pulumi.RunError(`Refusing this change:\n  - ${list.join("\n  - ")}`);
      return value;
    });
  return { controlPlaneCount: unlessRefused(config.controlPlaneCount), immutableSettings: unlessRefused(settings) };
}
