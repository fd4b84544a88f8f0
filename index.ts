// ha-k8s: config → checks → components → outputs. The GCP and SSH wiring lives in components/,
// everything rendered onto machines in render/ (shared with `npm run render` and the tests).
// An async program: Pulumi awaits it and uses the returned object as the stack outputs, which lets
// the change guard finish before a single resource is registered.

import * as pulumi from "@pulumi/pulumi";
import { ClusterAccess } from "./components/access";
import { ClusterBackup } from "./components/backup";
import { ClusterBootstrap } from "./components/bootstrap";
import { engineParallelism, loadClusterConfig } from "./components/config";
import { assertSafeChange } from "./components/guard";
import { LoadBalancer } from "./components/loadbalancer";
import { Network } from "./components/network";
import { NodePool } from "./components/nodes";
import { ClusterPki } from "./components/pki";
import { SSH_USER } from "./components/vm";
import { parallelismWarning } from "./render/parallelism";
import { buildPlan } from "./render/plan";

export = async () => {
  // The Pulumi SDK captures a stack trace for every output promise (runtime/debuggable.js; it only
  // prints them to report leaked promises), and ts-node maps every frame through source maps: that
  // was most of the program's time and garbage at a few hundred workers. One frame is enough for
  // our errors, which carry their own messages; HA_K8S_FULL_STACK_TRACES=1 restores V8's default.
  if (process.env.HA_K8S_FULL_STACK_TRACES !== "1") Error.stackTraceLimit = 1;
  const config = loadClusterConfig({ requireProject: !pulumi.runtime.isDryRun() });
  // Read back by the next deployment to refuse changes that would risk etcd or rebuild everything.
  const guarded = await assertSafeChange(config);
  const plan = buildPlan(config, guarded.deployed);
  const cluster = config.clusterName;
  const slots = parallelismWarning(plan, engineParallelism());
  if (slots) pulumi.log.warn(slots);

  const network = new Network(`${cluster}-network`, { config, plan });
  const access = new ClusterAccess(`${cluster}-access`, { config });
  const pki = new ClusterPki(`${cluster}-pki`, { clusterName: cluster });
  const backup = new ClusterBackup(`${cluster}-backup`, { config, serviceAccountEmail: access.serviceAccountEmail });
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
    loadBalancer,
    backup,
    backupBucket: backup.bucketName,
    externalIp: loadBalancer.externalIp,
    sshPrivateKey: access.sshPrivateKey,
    caCertPem: pki.caCertPem,
    caKeyPem: pki.caKeyPem,
    caCertHash: pki.caCertHash,
    bootstrapToken: pki.bootstrapToken,
    certificateKey: pki.certificateKey,
    controlPlaneKeys: pki.controlPlaneKeys,
    outputKey: pki.outputKey,
  });

  return {
    clusterName: cluster,
    controlPlaneCount: guarded.controlPlaneCount,
    immutableSettings: guarded.immutableSettings,
    // During an upgrade, only once its verification has passed: until then the next run reads the
    // version the cluster ran before (a failed update keeps the previous outputs, pulumi/pulumi#15754),
    // and resumes the unfinished upgrade. (The SDK registers all outputs together, once every one
    // has resolved: Stack.initialize in sdk/nodejs/runtime/stack.ts awaits them all before its one
    // registerOutputs, which gets nothing when any of them fails. So a failed first deployment leaves
    // no stack outputs at all, no kubeconfig and no sshPrivateKey: the key is in the state, see
    // docs/operating.md "After a failed first deployment". tests/unit/upgrade-program.test.ts checks
    // what it waits for.)
    kubernetesVersion: plan.upgrade
      ? bootstrap.verified.apply(() => plan.cluster.kubernetesPatch)
      : plan.cluster.kubernetesPatch,
    createdWithKubernetes: plan.cluster.createdWithVersion,
    controlPlaneEndpoint: `${plan.endpoint.internalIp}:${plan.endpoint.port}`,
    loadBalancerInternalIp: loadBalancer.internalIp,
    loadBalancerExternalIp: loadBalancer.externalIp,
    nodes: plan.nodes.map((n) => ({ name: n.name, role: n.role, zone: n.zone, internalIp: n.internalIp })),
    kubeconfig: bootstrap.kubeconfig,
    sshPrivateKey: access.sshPrivateKey,
    sshCommand: pulumi.interpolate`pulumi stack output --show-secrets sshPrivateKey > ${cluster}-ssh.key && chmod 600 ${cluster}-ssh.key && ssh -i ${cluster}-ssh.key ${SSH_USER}@${loadBalancer.externalIp}`,
    caCertHash: pki.caCertHash,
    backupBucket: backup.bucketName,
  };
};
