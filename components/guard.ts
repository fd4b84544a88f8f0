// Refuses unsafe transitions by reading this stack's own previous outputs (a StackReference to
// itself: pulumi/pulumi#3722). A refusal fails `pulumi preview` and `pulumi up` before the engine
// deletes anything: Pulumi deletes resources that left the program only after the program succeeded.

import * as pulumi from "@pulumi/pulumi";
import { controlPlaneChangeProblem } from "../render/changes";

/** Resolves to `next` when the change is allowed; fails the deployment with the reason otherwise. */
export function guardedControlPlaneCount(next: number): pulumi.Output<number> {
  const self = new pulumi.StackReference("previous-deployment", {
    name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`,
  });
  return self.getOutput("controlPlaneCount").apply((previous: unknown) => {
    const problem = controlPlaneChangeProblem(typeof previous === "number" ? previous : undefined, next);
    if (problem) throw new pulumi.RunError(`ha-k8s:controlPlaneCount: ${problem}`);
    return next;
  });
}
