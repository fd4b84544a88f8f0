// The network half of the plan: least-privilege firewall rules by tag, and how the endpoint address
// reaches HAProxy (one VM, or two behind GCP passthrough load balancers). Pure.

import type { ClusterConfig } from "./config";
import { API_PORT, MONITOR_PATH, MONITOR_PORT, names } from "./names";
import type { FirewallRule, LoadBalancing, PlannedNode, Role } from "./plan";

/**
 * Where Google's health checkers connect from: 35.191.0.0/16 and 130.211.0.0/22 for internal
 * passthrough load balancers, 35.191.0.0/16, 209.85.152.0/22 and 209.85.204.0/22 for
 * backend-service-based external passthrough ones (cloud.google.com/load-balancing/docs/firewall-rules).
 */
export const HEALTH_CHECK_RANGES = ["35.191.0.0/16", "130.211.0.0/22", "209.85.152.0/22", "209.85.204.0/22"];
export const EXTERNAL_ADDRESS_PLACEHOLDER = "<external address reserved by GCP>";

/**
 * Least-privilege rules by network tag. Ports: kubernetes.io "Ports and Protocols" (10251/10252 are
 * gone; scheduler and controller-manager serve 10259/10257 on localhost only, so nothing opens
 * them); Calico VXLAN needs UDP 4789 and Typha TCP 5473 between nodes.
 */
export function planFirewall(config: ClusterConfig): FirewallRule[] {
  const t = (role: Role | "node") => names.tag(config.clusterName, role);
  const rule = (r: Omit<FirewallRule, "name"> & { short: string }): FirewallRule => ({
    name: names.firewall(config.clusterName, r.short),
    description: r.description,
    protocol: r.protocol,
    ports: r.ports,
    sourceRanges: r.sourceRanges,
    sourceTags: r.sourceTags,
    targetTags: r.targetTags,
  });
  return [
    rule({
      short: "lb-api",
      description: "Kubernetes API on the load balancer from admins and from inside the VPC",
      protocol: "tcp",
      ports: [String(API_PORT)],
      sourceRanges: [...config.adminCidrs, config.subnetCidr],
      sourceTags: [],
      targetTags: [t("loadbalancer")],
    }),
    rule({
      short: "lb-ssh",
      description: "SSH to the jump host (the load balancer) from admins only",
      protocol: "tcp",
      ports: ["22"],
      sourceRanges: [...config.adminCidrs],
      sourceTags: [],
      targetTags: [t("loadbalancer")],
    }),
    rule({
      short: "cp-api",
      description: "kube-apiserver from the load balancer and the nodes",
      protocol: "tcp",
      ports: [String(API_PORT)],
      sourceRanges: [],
      sourceTags: [t("loadbalancer"), t("node")],
      targetTags: [t("control-plane")],
    }),
    rule({
      short: "cp-etcd",
      description: "etcd client and peer traffic between control planes only",
      protocol: "tcp",
      ports: ["2379-2380"],
      sourceRanges: [],
      sourceTags: [t("control-plane")],
      targetTags: [t("control-plane")],
    }),
    rule({
      short: "kubelet",
      description: "kubelet API from the control planes",
      protocol: "tcp",
      ports: ["10250"],
      sourceRanges: [],
      sourceTags: [t("control-plane")],
      targetTags: [t("node")],
    }),
    rule({
      short: "nodeports",
      description: "NodePort services from inside the VPC",
      protocol: "tcp",
      ports: ["30000-32767"],
      sourceRanges: [config.subnetCidr],
      sourceTags: [],
      targetTags: [t("worker")],
    }),
    rule({
      short: "calico-vxlan",
      description: "Calico VXLAN overlay between nodes",
      protocol: "udp",
      ports: ["4789"],
      sourceRanges: [],
      sourceTags: [t("node")],
      targetTags: [t("node")],
    }),
    rule({
      short: "calico-typha",
      description: "Calico Typha (felix to typha) between nodes",
      protocol: "tcp",
      ports: ["5473"],
      sourceRanges: [],
      sourceTags: [t("node")],
      targetTags: [t("node")],
    }),
    rule({
      short: "pods",
      description: "Traffic from pod addresses to nodes (pods reaching host-network services)",
      protocol: "all",
      ports: [],
      sourceRanges: [config.podCidr],
      sourceTags: [],
      targetTags: [t("node")],
    }),
    rule({
      short: "icmp",
      description: "ICMP inside the VPC (path MTU discovery, diagnostics)",
      protocol: "icmp",
      ports: [],
      sourceRanges: [config.subnetCidr],
      sourceTags: [],
      targetTags: [t("loadbalancer"), t("node")],
    }),
    rule({
      short: "node-ssh",
      description: "SSH to nodes (and to the other HAProxy VM) only through the jump host",
      protocol: "tcp",
      ports: ["22"],
      sourceRanges: [],
      sourceTags: [t("loadbalancer")],
      targetTags: [t("node"), t("loadbalancer")],
    }),
    ...(config.loadBalancerCount === 2
      ? [
          rule({
            short: "lb-health",
            description: "Google health checkers to HAProxy's monitor endpoint only",
            protocol: "tcp",
            ports: [String(MONITOR_PORT)],
            sourceRanges: HEALTH_CHECK_RANGES,
            sourceTags: [],
            targetTags: [t("loadbalancer")],
          }),
        ]
      : []),
  ];
}

export function planLoadBalancing(
  config: ClusterConfig,
  nodes: readonly PlannedNode[],
  endpoint: string,
): LoadBalancing {
  if (config.loadBalancerCount === 1) return { mode: "vm", instanceGroups: [], forwardingRules: [] };
  const balancers = nodes.filter((n) => n.role === "loadbalancer");
  return {
    mode: "passthrough",
    healthCheck: { name: names.healthCheck(config.clusterName), port: MONITOR_PORT, path: MONITOR_PATH },
    instanceGroups: balancers.map((n) => ({ name: names.instanceGroup(n.name), zone: n.zone, instance: n.name })),
    forwardingRules: [
      {
        name: names.internalForwarding(config.clusterName),
        scheme: "INTERNAL",
        address: endpoint,
        ports: [String(API_PORT)],
      },
      {
        name: names.externalForwarding(config.clusterName),
        scheme: "EXTERNAL",
        address: EXTERNAL_ADDRESS_PLACEHOLDER,
        // SSH reaches any healthy HAProxy VM, the jump host for everything else.
        ports: [String(API_PORT), "22"],
      },
    ],
  };
}
