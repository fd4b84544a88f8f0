// The VPC half: a custom-mode network, one regional subnet, Cloud Router + Cloud NAT (nodes have no
// external IP but must pull packages and images), and the firewall rules of the plan, by tag.

import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../render/config";
import { Plan, names } from "../render/plan";

/**
 * Cloud NAT's ports per VM with dynamic port allocation: powers of two (the API's rule), the minimum
 * at least 32, the maximum above it. 306 VMs (300 workers) at the minimum fit one NAT address
 * (64,512 ports).
 */
export const NAT_MIN_PORTS_PER_VM = 128;
export const NAT_MAX_PORTS_PER_VM = 4096;

export interface NetworkArgs {
  readonly config: ClusterConfig;
  readonly plan: Plan;
}

export class Network extends pulumi.ComponentResource {
  readonly network: gcp.compute.Network;
  readonly subnetwork: gcp.compute.Subnetwork;
  readonly firewalls: gcp.compute.Firewall[];

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ha-k8s:index:Network", name, {}, opts);
    const { config, plan } = args;
    const cluster = config.clusterName;

    this.network = new gcp.compute.Network(
      names.network(cluster),
      {
        name: names.network(cluster),
        autoCreateSubnetworks: false,
        routingMode: "REGIONAL",
        description: `ha-k8s cluster ${cluster}`,
      },
      { parent: this },
    );
    this.subnetwork = new gcp.compute.Subnetwork(
      names.subnet(cluster),
      {
        name: names.subnet(cluster),
        region: config.region,
        network: this.network.id,
        ipCidrRange: config.subnetCidr,
        privateIpGoogleAccess: true,
      },
      { parent: this },
    );
    const router = new gcp.compute.Router(
      names.router(cluster),
      { name: names.router(cluster), region: config.region, network: this.network.id },
      { parent: this },
    );
    new gcp.compute.RouterNat(
      names.nat(cluster),
      {
        name: names.nat(cluster),
        router: router.name,
        region: config.region,
        natIpAllocateOption: "AUTO_ONLY",
        sourceSubnetworkIpRangesToNat: "LIST_OF_SUBNETWORKS",
        subnetworks: [{ name: this.subnetwork.id, sourceIpRangesToNats: ["ALL_IP_RANGES"] }],
        logConfig: { enable: true, filter: "ERRORS_ONLY" },
        // Dynamic port allocation, bounded. The default is a fixed 64 ports per VM (static
        // allocation), and a port used towards one destination IP:port stays taken for the TCP
        // TIME_WAIT timeout (120 s) after the connection closes: a node that prepares (apt, CRI-O
        // pulling image layers in parallel, the registries' redirects to their CDNs) opens far more
        // connections to the same few endpoints at once, and past 64 Cloud NAT drops them
        // (OUT_OF_RESOURCES). With dynamic allocation each VM starts with NAT_MIN_PORTS_PER_VM and
        // gets more as it needs them, up to NAT_MAX_PORTS_PER_VM, and gives them back when idle; with
        // automatic NAT IP allocation Cloud NAT adds addresses as the ports require
        // (cloud.google.com/nat/docs/ports-and-addresses). The upper bound keeps one busy node from
        // taking the ports of the others. Dynamic allocation requires endpoint-independent mapping
        // off (the API refuses both on, RouterNat.enableDynamicPortAllocation), so it is off explicitly.
        enableDynamicPortAllocation: true,
        enableEndpointIndependentMapping: false,
        minPortsPerVm: NAT_MIN_PORTS_PER_VM,
        maxPortsPerVm: NAT_MAX_PORTS_PER_VM,
      },
      { parent: this },
    );
    this.firewalls = plan.firewall.map(
      (rule) =>
        new gcp.compute.Firewall(
          rule.name,
          {
            name: rule.name,
            description: rule.description,
            network: this.network.id,
            direction: "INGRESS",
            allows: [{ protocol: rule.protocol, ports: rule.ports.length > 0 ? [...rule.ports] : undefined }],
            sourceRanges: rule.sourceRanges.length > 0 ? [...rule.sourceRanges] : undefined,
            sourceTags: rule.sourceTags.length > 0 ? [...rule.sourceTags] : undefined,
            targetTags: [...rule.targetTags],
          },
          { parent: this },
        ),
    );
    this.registerOutputs({ network: this.network.id, subnetwork: this.subnetwork.id });
  }
}
