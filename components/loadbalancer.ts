// The load balancer tier in front of the API servers. Its endpoint address (a reserved internal
// address, the cluster's controlPlaneEndpoint) never changes: kubeadm bakes it into certificates
// and every kubeconfig. With one HAProxy VM the address is the VM's own; with two, the VMs sit in
// different zones behind a GCP internal passthrough load balancer on that same address (so going
// from 1 to 2 keeps the endpoint; the one VM moves to its own address, a one-time replacement), and
// operators reach the API and SSH through an external passthrough load balancer on the same
// reserved public address. GCP health-checks each HAProxy's monitor endpoint, which fails when that
// HAProxy has no API server left. HAProxy itself is configured by the bootstrap's "haproxy" steps.

import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { names } from "../render/plan";
import { MachineArgs, createVm } from "./vm";

export interface LoadBalancerArgs extends MachineArgs {
  readonly network: pulumi.Input<string>;
}

export class LoadBalancer extends pulumi.ComponentResource {
  /** The public address: operators' kubectl and the SSH jump host. */
  readonly externalIp: pulumi.Output<string>;
  /** The controlPlaneEndpoint address. */
  readonly internalIp: pulumi.Output<string>;
  /** HAProxy instances by node name. */
  readonly instances: ReadonlyMap<string, gcp.compute.Instance>;

  constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ha-k8s:index:LoadBalancer", name, {}, opts);
    const { config, plan } = args;
    const cluster = config.clusterName;
    const endpoint = new gcp.compute.Address(
      names.endpointAddress(cluster),
      {
        name: names.endpointAddress(cluster),
        region: config.region,
        subnetwork: args.subnetwork,
        addressType: "INTERNAL",
        address: plan.endpoint.internalIp,
        description: `controlPlaneEndpoint of ${cluster}; must never change`,
      },
      { parent: this },
    );
    const external = new gcp.compute.Address(
      names.externalAddress(cluster),
      {
        name: names.externalAddress(cluster),
        region: config.region,
        addressType: "EXTERNAL",
        networkTier: "PREMIUM",
        description: `public Kubernetes API and SSH jump host of ${cluster}`,
      },
      { parent: this },
    );

    const single = plan.loadBalancing.mode === "vm";
    const instances = new Map<string, gcp.compute.Instance>();
    for (const node of plan.nodes.filter((n) => n.role === "loadbalancer")) {
      const vm = createVm(this, {
        ...args,
        node,
        externalAddress: single ? external.address : undefined,
        reservedAddress: single ? endpoint : undefined,
      });
      instances.set(node.name, vm.instance);
    }
    if (!single) this.passthroughBalancers(args, instances, endpoint, external);

    this.instances = instances;
    this.externalIp = external.address;
    this.internalIp = endpoint.address;
    this.registerOutputs({ externalIp: this.externalIp, internalIp: this.internalIp });
  }

  private passthroughBalancers(
    args: LoadBalancerArgs,
    instances: ReadonlyMap<string, gcp.compute.Instance>,
    endpoint: gcp.compute.Address,
    external: gcp.compute.Address,
  ): void {
    const { config, plan } = args;
    const lb = plan.loadBalancing;
    const check = lb.healthCheck!;
    const healthCheck = new gcp.compute.RegionHealthCheck(
      check.name,
      {
        name: check.name,
        region: config.region,
        // Out within ~4 s of HAProxy losing its last API server (or dying).
        checkIntervalSec: 2,
        timeoutSec: 2,
        healthyThreshold: 2,
        unhealthyThreshold: 2,
        httpHealthCheck: { port: check.port, requestPath: check.path },
      },
      { parent: this },
    );
    // Groups with fixed names that never depend on a VM: VMs are delete-before-replace, and a group
    // named after its VM's id was deleted first while both backend services still used it, which GCE
    // refuses (resourceInUseByAnotherResource; terraform-provider-google#1853, #6376). The VM joins
    // through a membership instead. A replaced VM keeps its name and self link, and GCE drops the old
    // one from the group (terraform-provider-google#4705): the membership's `instance` forces a new
    // membership (ForceNew in resource_compute_instance_group_membership.go), so the engine replaces
    // it with the delete-before-replace VM, and its replacementTrigger on the VM's id (the provider
    // docs' advice for this resource) re-adds a VM that was recreated outside a replace.
    const groups = lb.instanceGroups.map((g) => {
      const instance = instances.get(g.instance)!;
      const group = new gcp.compute.InstanceGroup(
        g.name,
        { name: g.name, zone: g.zone, network: args.network },
        { parent: this },
      );
      new gcp.compute.InstanceGroupMembership(
        `${g.name}-member`,
        { instanceGroup: group.name, instance: instance.selfLink, zone: g.zone },
        { parent: this, replacementTrigger: instance.instanceId },
      );
      return group;
    });
    const backends = groups.map((g) => ({ group: g.id, balancingMode: "CONNECTION" }));
    // The forwarding rules take over addresses a lone HAProxy VM may have held: after the VMs.
    const afterVms = { parent: this, dependsOn: [...instances.values()] };
    for (const rule of lb.forwardingRules) {
      const internal = rule.scheme === "INTERNAL";
      const backend = new gcp.compute.RegionBackendService(
        rule.name,
        {
          name: rule.name,
          region: config.region,
          loadBalancingScheme: rule.scheme,
          protocol: "TCP",
          healthChecks: healthCheck.id,
          backends,
          connectionDrainingTimeoutSec: 30,
          // One client, one HAProxy VM: SSH through the external rule otherwise lands on either VM,
          // whose host keys differ. The backend is a consistent hash of the client address over the
          // eligible backends, all of them when none is healthy (cloud.google.com/load-balancing/docs/
          // network/ext-netlb-traffic-distribution), so it moves only when a VM's health changes.
          ...(internal ? {} : { sessionAffinity: "CLIENT_IP" }),
        },
        { parent: this },
      );
      new gcp.compute.ForwardingRule(
        rule.name,
        {
          name: rule.name,
          region: config.region,
          loadBalancingScheme: rule.scheme,
          ipProtocol: "TCP",
          ipAddress: internal ? endpoint.address : external.address,
          ports: [...rule.ports],
          backendService: backend.id,
          ...(internal ? { network: args.network, subnetwork: args.subnetwork } : { networkTier: "PREMIUM" }),
        },
        afterVms,
      );
    }
  }
}
