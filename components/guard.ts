// Refuses unsafe transitions before any resource is registered, by reading this stack's own outputs
// from its previous deployment (a StackReference to itself: pulumi/pulumi#3722). The program awaits
// it first, so a refusal fails `pulumi preview` and `pulumi up` before the engine touches anything.
// During an upgrade the outputs are registered only once its last verification has passed
// (index.ts), and the engine keeps a stack's previous outputs when an update fails without
// registering new ones (pulumi/pulumi#15754, March 2024, fixing #14621): an upgrade that stopped
// half-way is still an upgrade on the next run, which resumes it.

import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../render/config";
import {
  DeployedLoadBalancer,
  ImmutableSettings,
  changeProblems,
  formatRefusal,
  immutableSettingsOf,
} from "../render/changes";
import { DeployedState } from "../render/plan";
import { projectFromEnvironment } from "./config";

/** What the next deployment reads back (exported as stack outputs), and what the last one left. */
export interface GuardedSettings {
  readonly controlPlaneCount: number;
  readonly immutableSettings: ImmutableSettings;
  /** The running cluster's version and the version it was created with (buildPlan's input). */
  readonly deployed: DeployedState;
}

export async function assertSafeChange(config: ClusterConfig): Promise<GuardedSettings> {
  const self = new pulumi.StackReference("previous-deployment", {
    name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`,
  });
  // The project the GCP provider will use: gcp:project, else its environment fallbacks.
  const environmentProject = projectFromEnvironment();
  const settings = immutableSettingsOf(config, environmentProject);
  const [previousCount, previousSettings, previousVersion, createdWith, previousNodes] = await Promise.all([
    self.getOutputDetails("controlPlaneCount"),
    self.getOutputDetails("immutableSettings"),
    self.getOutputDetails("kubernetesVersion"),
    self.getOutputDetails("createdWithKubernetes"),
    self.getOutputDetails("nodes"),
  ]);
  const text = (value: unknown) => (typeof value === "string" ? value : undefined);
  const nodes = Array.isArray(previousNodes.value)
    ? (previousNodes.value as { role?: string; name?: string; zone?: string }[])
    : undefined;
  const loadBalancers = nodes
    ?.filter((n) => n.role === "loadbalancer")
    .map((n): DeployedLoadBalancer => ({ name: String(n.name), zone: String(n.zone) }));
  const deployed: DeployedState = {
    kubernetesVersion: text(previousVersion.value),
    createdWithVersion: text(createdWith.value),
  };
  const problems = changeProblems(
    {
      controlPlaneCount: typeof previousCount.value === "number" ? previousCount.value : undefined,
      immutableSettings: previousSettings.value as Partial<ImmutableSettings> | undefined,
      kubernetesVersion: deployed.kubernetesVersion,
      createdWithKubernetes: deployed.createdWithVersion,
      workerCount: nodes?.filter((n) => n.role === "worker").length,
      loadBalancers,
    },
    config,
    environmentProject,
  );
  if (problems.length > 0) throw new pulumi.RunError(formatRefusal(problems));
  return { controlPlaneCount: config.controlPlaneCount, immutableSettings: settings, deployed };
}
