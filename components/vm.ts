// One VM of the plan with its reserved static internal address. Shared by the node pool and the
// load balancer so every machine gets the same hardening: Shielded VM, no project-wide SSH keys,
// a dedicated service account with minimal scopes, labels for policy and billing.

import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { scopesFor } from "../render/backup";
import { ClusterConfig } from "../render/config";
import { renderCloudConfig } from "../render/cloudinit";
import { Plan, PlannedNode, SSH_USER, names } from "../render/plan";

export { SSH_USER };

/** What every component that creates machines needs. */
export interface MachineArgs {
  readonly config: ClusterConfig;
  readonly plan: Plan;
  readonly subnetwork: pulumi.Input<string>;
  readonly serviceAccountEmail: pulumi.Input<string>;
  /** OpenSSH public key of the per-stack key pair. */
  readonly sshPublicKey: pulumi.Input<string>;
}

export interface VmArgs extends MachineArgs {
  readonly node: PlannedNode;
  /** Reserved external address; only a lone load balancer VM has one. */
  readonly externalAddress?: pulumi.Input<string>;
  /**
   * An address reserved elsewhere to use as the VM's own (the endpoint address of a lone HAProxy
   * VM); by default the VM reserves its planned address itself.
   */
  readonly reservedAddress?: gcp.compute.Address;
}

/**
 * Changing the image, machine type or zone of an existing VM would replace it, and Pulumi would
 * replace every such VM at once (all control planes: etcd loses quorum). So those changes apply to
 * new VMs only; existing ones are rolled one at a time on purpose (docs/operating.md, "Operating the cluster").
 */
export const ROLL_EXPLICITLY = [
  "bootDisk.initializeParams.image",
  "machineType",
  "zone",
  // Scopes change only on a stopped VM (allowStoppingForUpdate is off): control planes created
  // before backups existed keep theirs until rolled (docs/operating.md, "Backups on existing clusters").
  "serviceAccount.scopes",
];

export function createVm(
  parent: pulumi.Resource,
  args: VmArgs,
): { address: gcp.compute.Address; instance: gcp.compute.Instance } {
  const { config, node } = args;
  const address =
    args.reservedAddress ??
    new gcp.compute.Address(
      names.nodeAddress(node.name),
      {
        name: names.nodeAddress(node.name),
        region: config.region,
        subnetwork: args.subnetwork,
        addressType: "INTERNAL",
        address: node.internalIp,
        description: `static internal address of ${node.name}`,
      },
      { parent },
    );
  const instance = new gcp.compute.Instance(
    node.name,
    {
      name: node.name,
      zone: node.zone,
      machineType: node.machineType,
      tags: [...node.tags],
      labels: { "ha-k8s-cluster": config.clusterName, "ha-k8s-role": node.role },
      bootDisk: {
        autoDelete: true,
        initializeParams: { image: config.image, size: config.diskSizeGb, type: "pd-balanced" },
      },
      networkInterfaces: [
        {
          subnetwork: args.subnetwork,
          networkIp: address.address,
          accessConfigs: args.externalAddress ? [{ natIp: args.externalAddress }] : [],
        },
      ],
      // Off: Calico's VXLAN carries pod traffic between nodes inside packets addressed node to node,
      // and traffic leaving the cluster is NATed to the node's address (natOutgoing), so GCE never
      // sees a pod address on the wire. The common org policy constraints/compute.vmCanIpForward
      // refuses VMs that ask for it.
      canIpForward: false,
      shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
      metadata: {
        "user-data": renderCloudConfig(),
        "ssh-keys": pulumi.interpolate`${SSH_USER}:${args.sshPublicKey}`,
        "block-project-ssh-keys": "true",
        "enable-oslogin": "FALSE",
      },
      serviceAccount: {
        email: args.serviceAccountEmail,
        scopes: scopesFor(node.role),
      },
      scheduling: { automaticRestart: true, onHostMaintenance: "MIGRATE" },
      allowStoppingForUpdate: false,
    },
    // Same name after replacement, so the old VM must go first; its address stays reserved.
    { parent, deleteBeforeReplace: true, ignoreChanges: ROLL_EXPLICITLY },
  );
  return { address, instance };
}
