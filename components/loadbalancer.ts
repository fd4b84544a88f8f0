// The HAProxy VM in front of the API servers: its static internal address is the cluster's
// controlPlaneEndpoint (fixed for the cluster's life: kubeadm bakes it into certificates and every
// kubeconfig) and a static external address serves operators' kubectl and is the SSH jump host.
// HAProxy itself is installed and configured by the bootstrap's "haproxy" step.

import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../render/config";
import { Plan, names } from "../render/plan";
import { createVm } from "./vm";

export interface LoadBalancerArgs {
  readonly config: ClusterConfig;
  readonly plan: Plan;
  readonly subnetwork: pulumi.Input<string>;
  readonly serviceAccountEmail: pulumi.Input<string>;
  readonly sshPublicKey: pulumi.Input<string>;
}

export class LoadBalancer extends pulumi.ComponentResource {
  readonly externalIp: pulumi.Output<string>;
  readonly internalIp: pulumi.Output<string>;
  /** Instances by node name. */
  readonly instances: ReadonlyMap<string, gcp.compute.Instance>;

  constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ha-k8s:index:LoadBalancer", name, {}, opts);
    const { config, plan } = args;
    const external = new gcp.compute.Address(
      names.externalAddress(config.clusterName),
      {
        name: names.externalAddress(config.clusterName),
        region: config.region,
        addressType: "EXTERNAL",
        networkTier: "PREMIUM",
        description: `public Kubernetes API and SSH jump host of ${config.clusterName}`,
      },
      // Operators' kubeconfigs and the API certificate name this address.
      { parent: this },
    );
    const instances = new Map<string, gcp.compute.Instance>();
    let internal: gcp.compute.Address | undefined;
    for (const node of plan.nodes.filter((n) => n.role === "loadbalancer")) {
      const vm = createVm(this, {
        config,
        node,
        subnetwork: args.subnetwork,
        serviceAccountEmail: args.serviceAccountEmail,
        sshPublicKey: args.sshPublicKey,
        externalAddress: external.address,
      });
      instances.set(node.name, vm.instance);
      if (node.internalIp === plan.endpoint.internalIp) internal = vm.address;
    }
    if (!internal) throw new Error("no load balancer holds the control-plane endpoint address");
    this.instances = instances;
    this.externalIp = external.address;
    this.internalIp = internal.address;
    this.registerOutputs({ externalIp: this.externalIp, internalIp: this.internalIp });
  }
}
