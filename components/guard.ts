// Refuses unsafe transitions before any resource is registered, by reading this stack's own outputs
// from its previous deployment (a StackReference to itself: pulumi/pulumi#3722). The program awaits
// it first, so a refusal fails `pulumi preview` and `pulumi up` before the engine touches anything.

import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../render/config";
import { ImmutableSettings, controlPlaneChangeProblem, immutableSettingsProblems } from "../render/changes";

/** What the next deployment reads back (exported as stack outputs). */
export interface GuardedSettings {
  readonly controlPlaneCount: number;
  readonly immutableSettings: ImmutableSettings;
}

export async function assertSafeChange(config: ClusterConfig): Promise<GuardedSettings> {
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
  const [previousCount, previousSettings] = await Promise.all([
    self.getOutputDetails("controlPlaneCount"),
    self.getOutputDetails("immutableSettings"),
  ]);
  const problems = immutableSettingsProblems(
    previousSettings.value as Partial<ImmutableSettings> | undefined,
    settings,
  );
  const scale = controlPlaneChangeProblem(
    typeof previousCount.value === "number" ? previousCount.value : undefined,
    config.controlPlaneCount,
  );
  if (scale) problems.push(`ha-k8s:controlPlaneCount: ${scale}`);
  if (problems.length > 0) throw new pulumi.RunError(`Refusing this change:\n  - ${problems.join("\n  - ")}`);
  return { controlPlaneCount: config.controlPlaneCount, immutableSettings: settings };
}
