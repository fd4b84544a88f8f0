// GCE names and well-known ports and accounts, all derived in one place. Pure.

import type { Role } from "./plan";

export const API_PORT = 6443;
/** The account every machine's SSH key is installed for (GCE metadata "ssh-keys"). */
export const SSH_USER = "k8sadmin";
export const MONITOR_PORT = 8404;
export const MONITOR_PATH = "/healthz";
/** GCE names, all derived from clusterName in one place. */
export const names = {
  network: (cluster: string) => `${cluster}-vpc`,
  subnet: (cluster: string) => `${cluster}-subnet`,
  router: (cluster: string) => `${cluster}-router`,
  nat: (cluster: string) => `${cluster}-nat`,
  endpointAddress: (cluster: string) => `${cluster}-api`,
  externalAddress: (cluster: string) => `${cluster}-api-public`,
  nodeAddress: (node: string) => `${node}-ip`,
  node: (cluster: string, role: Role, index: number) =>
    `${cluster}-${role === "control-plane" ? "cp" : role === "worker" ? "worker" : "lb"}-${index}`,
  firewall: (cluster: string, rule: string) => `${cluster}-${rule}`,
  healthCheck: (cluster: string) => `${cluster}-lb-health`,
  internalForwarding: (cluster: string) => `${cluster}-api-internal`,
  externalForwarding: (cluster: string) => `${cluster}-api-external`,
  instanceGroup: (node: string) => `${node}-group`,
  tag: (cluster: string, role: Role | "node") =>
    `${cluster}-${role === "control-plane" ? "cp" : role === "loadbalancer" ? "lb" : role}`,
};
