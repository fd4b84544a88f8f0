// ha-k8s: config → components → exports. The GCP and SSH wiring lives in components/, everything
// rendered onto machines in render/ (shared with `npm run render` and the tests).

import * as pulumi from "@pulumi/pulumi";
import { ClusterAccess } from "./components/access";
import { ClusterBootstrap } from "./components/bootstrap";
import { loadClusterConfig } from "./components/config";
import { LoadBalancer } from "./components/loadbalancer";
import { Network } from "./components/network";
import { NodePool } from "./components/nodes";
import { ClusterPki } from "./components/pki";
import { guardChanges } from "./components/guard";
import { SSH_USER } from "./components/vm";
import { buildPlan } from "./render/plan";

const config = loadClusterConfig({ requireProject: !pulumi.runtime.isDryRun() });
const plan = buildPlan(config);
const cluster = config.clusterName;

const network = new Network(`${cluster}-network`, { config, plan });
const access = new ClusterAccess(`${cluster}-access`, { config });
const pki = new ClusterPki(`${cluster}-pki`, { clusterName: cluster });
const machineArgs = {
  config,
  plan,
  network: network.network.id,
  subnetwork: network.subnetwork.id,
  serviceAccountEmail: access.serviceAccountEmail,
  sshPublicKey: access.sshPublicKey,
};
const loadBalancer = new LoadBalancer(`${cluster}-lb`, machineArgs);
const nodePool = new NodePool(`${cluster}-nodes`, machineArgs);
const bootstrap = new ClusterBootstrap(`${cluster}-bootstrap`, {
  config,
  plan,
  instances: new Map([...loadBalancer.instances, ...nodePool.instances]),
  network,
  externalIp: loadBalancer.externalIp,
  sshPrivateKey: access.sshPrivateKey,
  caCertPem: pki.caCertPem,
  caKeyPem: pki.caKeyPem,
  caCertHash: pki.caCertHash,
  bootstrapToken: pki.bootstrapToken,
  certificateKey: pki.certificateKey,
});

export const clusterName = cluster;
// Read back by the next deployment to refuse changes that would risk etcd quorum.
const guarded = guardChanges(config);
export const controlPlaneCount = guarded.controlPlaneCount;
export const immutableSettings = guarded.immutableSettings;
export const kubernetesVersion = plan.cluster.kubernetesPatch;
export const controlPlaneEndpoint = `${plan.endpoint.internalIp}:${plan.endpoint.port}`;
export const loadBalancerInternalIp = loadBalancer.internalIp;
export const loadBalancerExternalIp = loadBalancer.externalIp;
export const nodes = plan.nodes.map((n) => ({ name: n.name, role: n.role, zone: n.zone, internalIp: n.internalIp }));
export const kubeconfig = bootstrap.kubeconfig;
export const sshPrivateKey = access.sshPrivateKey;
export const sshCommand = pulumi.interpolate`pulumi stack output --show-secrets sshPrivateKey > ${cluster}-ssh.key && chmod 600 ${cluster}-ssh.key && ssh -i ${cluster}-ssh.key ${SSH_USER}@${loadBalancer.externalIp}`;
export const caCertHash = pki.caCertHash;
