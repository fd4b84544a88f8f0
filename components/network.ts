// The VPC half: a custom-mode network, one regional subnet, Cloud Router + Cloud NAT (nodes have no
// external IP but must pull packages and images), and the firewall rules of the plan, by tag.

import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../render/config";
import { Plan, names } from "../render/plan";

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
