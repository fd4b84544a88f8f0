// The Kubernetes machines: control planes and workers, each with its static internal address,
// spread over the zones as the plan says (control planes first, on distinct zones).

import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { MachineArgs, createVm } from "./vm";

export type NodePoolArgs = MachineArgs;

export class NodePool extends pulumi.ComponentResource {
  /** Instances by node name. */
  readonly instances: ReadonlyMap<string, gcp.compute.Instance>;

  constructor(name: string, args: NodePoolArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ha-k8s:index:NodePool", name, {}, opts);
    const instances = new Map<string, gcp.compute.Instance>();
    for (const node of args.plan.nodes.filter((n) => n.role !== "loadbalancer")) {
      const { instance } = createVm(this, { ...args, node });
      instances.set(node.name, instance);
    }
    this.instances = instances;
    this.registerOutputs({ nodes: [...instances.keys()] });
  }
}
