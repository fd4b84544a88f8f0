// The plan's nodes as test "machines" (a directory standing in for each one's root file system, the
// scripts' HA_K8S_ROOT), with what kubeadm puts on the control planes before their components
// start: certificates, kubeconfigs, static Pod manifests in /etc/kubernetes/manifests and the
// kubelet's files in /var/lib/kubelet, all made by kubeadm's own init phases from the rendered
// configuration and the cluster CA.

import * as fs from "fs";
import * as path from "path";
import { PlannedNode } from "../../render/plan";
import { ControlPlaneBinaries } from "./binaries";
import { runOk } from "./exec";
import { joiningControlPlaneConfig, machineConfig, manifestFlags } from "./kubeadm-files";
import { TestStack } from "./stack";

export interface Machine {
  readonly node: PlannedNode;
  readonly root: string;
  /** <root>/etc/kubernetes */
  readonly kubernetesDir: string;
  readonly pki: string;
  readonly adminConf: string;
  readonly kubeletConf: string;
  /**
   * <root>/etc/kubernetes/manifests: a control plane's static Pod manifests as kubeadm wrote them
   * (etcd.yaml; the first: all four). Its fake kubelet mirrors them into the API, as a kubelet does.
   */
  readonly manifests: string;
  /** <root>/var/lib/kubelet: a control plane's kubelet configuration files as kubeadm wrote them. */
  readonly kubeletDir: string;
  /** A control plane's kubeadm configuration: the rendered one, certificates in this machine's pki. */
  readonly kubeadmConfig: string;
}

export interface PreparedMachines {
  machine(name: string): Machine;
  /** The rendered InitConfiguration/ClusterConfiguration of the first control plane, as staged. */
  readonly initConfig: string;
  /** The flags kubeadm's static Pod manifest gives a component on a control plane. */
  flags(node: string, component: "etcd" | "kube-apiserver" | "kube-controller-manager"): Map<string, string>;
}

/** What a joining control plane receives in the kubeadm-certs Secret (copycerts.certsToTransfer). */
const SHARED_KEYS = [
  "ca.crt",
  "ca.key",
  "sa.key",
  "sa.pub",
  "front-proxy-ca.crt",
  "front-proxy-ca.key",
  "etcd/ca.crt",
  "etcd/ca.key",
];

export async function prepareMachines(
  dir: string,
  stack: TestStack,
  binaries: ControlPlaneBinaries,
): Promise<PreparedMachines> {
  const kubeadm = (args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
    runOk(binaries.kubeadm, args, { env: { ...process.env, ...env } });
  const configs = path.join(dir, "configs");
  fs.mkdirSync(configs, { recursive: true, mode: 0o700 });
  const machines = new Map<string, Machine>();
  for (const node of stack.plan.nodes) {
    const root = path.join(dir, "machines", node.name);
    const kubernetesDir = path.join(root, "etc/kubernetes");
    fs.mkdirSync(kubernetesDir, { recursive: true });
    machines.set(node.name, {
      node,
      root,
      kubernetesDir,
      pki: path.join(kubernetesDir, "pki"),
      adminConf: path.join(kubernetesDir, "admin.conf"),
      kubeletConf: path.join(kubernetesDir, "kubelet.conf"),
      manifests: path.join(kubernetesDir, "manifests"),
      kubeletDir: path.join(root, "var/lib/kubelet"),
      kubeadmConfig: path.join(configs, `${node.name}.yaml`),
    });
  }
  const machine = (name: string): Machine => {
    const found = machines.get(name);
    if (!found) throw new Error(`no machine ${name} in the plan`);
    return found;
  };
  const [firstNode, ...others] = stack.controlPlanes;
  const first = machine(firstNode.name);

  // The first control plane, as kubeadm-init.sh prepares it: the cluster CA and the other shared
  // keys Pulumi made in its pki ("etcd-ca.crt" is etcd/ca.crt), then kubeadm's certificates and
  // every kubeconfig from the rendered configuration.
  const initStep = stack.step("init", firstNode.name);
  const initConfig = fs.readFileSync(stack.staged(initStep, "kubeadm-init.yaml"), "utf8");
  fs.mkdirSync(path.join(first.pki, "etcd"), { recursive: true });
  for (const file of SHARED_KEYS) {
    fs.copyFileSync(stack.staged(initStep, file.replace("/", "-")), path.join(first.pki, file));
  }
  fs.writeFileSync(first.kubeadmConfig, machineConfig(initConfig, first.pki), { mode: 0o600 });
  await kubeadm(["init", "phase", "certs", "all", "--config", first.kubeadmConfig]);
  await kubeadm(["init", "phase", "kubeconfig", "all", "--config", first.kubeadmConfig, "--kubeconfig-dir", first.kubernetesDir]); // prettier-ignore

  // The other control planes, as their `kubeadm join --control-plane` prepares them: the shared
  // keys, then kubeadm's certificates and admin.conf for that node, from the cluster's
  // configuration and the node's rendered JoinConfiguration.
  for (const node of others) {
    const m = machine(node.name);
    const joinConfig = fs.readFileSync(stack.staged(stack.step("join", node.name), "kubeadm-join.yaml"), "utf8");
    fs.writeFileSync(m.kubeadmConfig, joiningControlPlaneConfig(initConfig, joinConfig, m.pki), { mode: 0o600 });
    fs.mkdirSync(path.join(m.pki, "etcd"), { recursive: true });
    for (const file of SHARED_KEYS) fs.copyFileSync(path.join(first.pki, file), path.join(m.pki, file));
    await kubeadm(["init", "phase", "certs", "all", "--config", m.kubeadmConfig]);
    await kubeadm(["init", "phase", "kubeconfig", "admin", "--config", m.kubeadmConfig, "--kubeconfig-dir", m.kubernetesDir]); // prettier-ignore
  }

  // The static Pod manifests and the kubelet's files, written into the machine by the phases' dry
  // runs (KUBEADM_INIT_DRYRUN_DIR, GetDryRunDir in cmd/kubeadm/app/constants): the kubelet-start
  // phase writes /var/lib/kubelet's config.yaml, kubeadm-flags.env and instance-config.yaml (the
  // CRI socket, which kubeadm's later commands read back: GetNodeRegistration in
  // cmd/kubeadm/app/util/config/cluster.go) and, not dry, would start the kubelet. Only the
  // components that run here get a manifest: etcd on every control plane, the API server,
  // controller manager and scheduler on the first.
  for (const node of stack.controlPlanes) {
    const m = machine(node.name);
    fs.mkdirSync(m.manifests, { recursive: true });
    const env = { KUBEADM_INIT_DRYRUN_DIR: m.manifests };
    await kubeadm(["init", "phase", "etcd", "local", "--dry-run", "--config", m.kubeadmConfig], env);
    if (node === firstNode) {
      await kubeadm(["init", "phase", "control-plane", "all", "--dry-run", "--config", m.kubeadmConfig], env);
    }
    fs.mkdirSync(m.kubeletDir, { recursive: true });
    await kubeadm(["init", "phase", "kubelet-start", "--dry-run", "--config", m.kubeadmConfig], {
      KUBEADM_INIT_DRYRUN_DIR: m.kubeletDir,
    });
  }

  return {
    machine,
    initConfig,
    flags: (node, component) =>
      manifestFlags(fs.readFileSync(path.join(machine(node).manifests, `${component}.yaml`), "utf8")),
  };
}
