// The real programs the control-plane tests run: kube-apiserver, kube-controller-manager, kubeadm
// and kubectl of the Kubernetes patch render/versions.ts pins (tools/kubernetes.sh), etcd, etcdctl
// and etcdutl of the etcd release kubeadm deploys for it (tools/etcd.sh), and the kubeadm of the
// other supported minors (the upgrade tests). The tools build on first use from the Go modules and
// cache by version; here they only print the cached paths (tests/control-plane/run.sh builds them
// before the tests start, outside the network namespace).

import { spawnSync } from "child_process";
import * as path from "path";
import { PROJECT_DIR } from "../../render/project";
import { kubernetesRelease } from "../../render/versions";

export interface ControlPlaneBinaries {
  /** The exact Kubernetes patch, e.g. "1.36.3". */
  readonly kubernetesVersion: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly kubeadm: string;
  readonly kubectl: string;
  readonly etcd: string;
  readonly etcdctl: string;
}

export const KUBERNETES_BINARIES = ["kube-apiserver", "kube-controller-manager", "kubeadm", "kubectl"] as const;

function tool(script: string, args: readonly string[]): string[] {
  const result = spawnSync("bash", [path.join(PROJECT_DIR, "tools", script), ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (result.status !== 0) throw new Error(`tools/${script} ${args.join(" ")} failed (its output is above)`);
  return result.stdout.trim().split("\n");
}

/** The binaries for a supported Kubernetes minor; throws a one-line error when a build fails. */
export function controlPlaneBinaries(minor: string): ControlPlaneBinaries {
  const patch = kubernetesRelease(minor).patch;
  const [kubeApiserver, kubeControllerManager, kubeadm, kubectl] = tool("kubernetes.sh", [
    patch,
    ...KUBERNETES_BINARIES,
  ]);
  const [etcdDir] = tool("etcd.sh", ["--for-kubernetes", patch]);
  return {
    kubernetesVersion: patch,
    kubeApiserver,
    kubeControllerManager,
    kubeadm,
    kubectl,
    etcd: path.join(etcdDir, "etcd"),
    etcdctl: path.join(etcdDir, "etcdctl"),
  };
}

/** The real kubeadm of a Kubernetes patch (tools/kubeadm.sh), e.g. of the next minor for an upgrade. */
export function kubeadmBinary(patch: string): string {
  return tool("kubeadm.sh", [patch])[0];
}
