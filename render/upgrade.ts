// Kubernetes upgrades of a running cluster, the way kubeadm's own procedure does them
// (kubernetes.io "Upgrading kubeadm clusters"): one minor at a time; kubeadm upgrade apply on one
// control plane, kubeadm upgrade node on the others one after another, then each node drained, its
// kubelet and kubectl (and CRI-O, which follows the minor) upgraded, and uncordoned. Pure.

import { SUPPORTED_KUBERNETES, asPatchVersion, kubernetesRelease, minorOfVersion } from "./versions";

export interface KubernetesVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

/** "1.36.3", "v1.36.3" or a minor "1.36" (patch undefined). */
export function parseKubernetesVersion(text: string): { major: number; minor: number; patch?: number } | undefined {
  const match = /^v?(\d+)\.(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!match) return undefined;
  return {
    major: Number(match[1]),
    minor: Number(match[2]),
    patch: match[3] === undefined ? undefined : Number(match[3]),
  };
}

const minorOf = (v: { major: number; minor: number }) => `${v.major}.${v.minor}`;

/** What a change of kubernetesVersion means for a running cluster. */
export type VersionChange =
  | { readonly kind: "none"; readonly patch: string }
  | { readonly kind: "upgrade"; readonly from: string; readonly to: string }
  | { readonly kind: "refused"; readonly problem: string };

/**
 * `deployed` is the patch the cluster runs (the stack's last kubernetesVersion output; a minor is
 * accepted too, for the offline render), `targetMinor` the configured minor (validated: supported).
 * A bump of the pinned patch within the minor (render/versions.ts) is an upgrade too.
 */
export function kubernetesVersionChange(deployed: string | undefined, targetMinor: string): VersionChange {
  const target = kubernetesRelease(targetMinor).patch;
  if (deployed === undefined) return { kind: "none", patch: target };
  const from = parseKubernetesVersion(deployed);
  const parsedTarget = parseKubernetesVersion(target)!;
  const to = { ...parsedTarget, patch: parsedTarget.patch ?? 0 }; // pins are always full patches
  if (!from) {
    return {
      kind: "refused",
      problem: `the deployed version "${deployed}" is not a Kubernetes version; cannot plan a change from it`,
    };
  }
  const fromPatch = from.patch ?? parseKubernetesVersion(SUPPORTED_KUBERNETES[minorOf(from)]?.patch ?? "")?.patch;
  const supported = Object.keys(SUPPORTED_KUBERNETES).join(", ");
  const next = `${from.major}.${from.minor + 1}`;
  const nextStep =
    next in SUPPORTED_KUBERNETES
      ? `set "${next}" (the next minor), run pulumi up, then go on one minor at a time`
      : `keep "${minorOf(from)}"; no later minor is supported yet (supported: ${supported})`;
  if (from.major !== to.major || to.minor > from.minor + 1) {
    return {
      kind: "refused",
      problem:
        `"${minorOf(from)}" -> "${targetMinor}" skips a minor: kubeadm upgrades one minor at a time ` +
        `(the deployed cluster runs ${deployed}); ${nextStep}`,
    };
  }
  if (to.minor < from.minor || (to.minor === from.minor && fromPatch !== undefined && to.patch < fromPatch)) {
    return {
      kind: "refused",
      problem:
        `"${targetMinor}" (${target}) is older than the deployed ${deployed}: downgrades are not supported ` +
        `(kubeadm cannot roll etcd and the control plane back); keep "${minorOf(from)}", or ${nextStep.replace(/^set/, "upgrade: set")}`,
    };
  }
  if (to.minor === from.minor && (fromPatch === undefined || to.patch === fromPatch))
    return { kind: "none", patch: target };
  return { kind: "upgrade", from: asPatchVersion(deployed), to: target };
}

/** The plan's view of a machine and of a step, as far as the upgrade graph needs them. */
interface UpgradeNode {
  readonly name: string;
  readonly role: "control-plane" | "worker" | "loadbalancer";
  readonly index: number;
}
export interface UpgradeStep {
  readonly id: string;
  readonly kind: "upgrade" | "upgrade-drain" | "upgrade-uncordon" | "upgrade-verify";
  readonly node: string;
  readonly subject: string;
  readonly dependsOn: readonly string[];
  readonly description: string;
  readonly rerunWhenReplaced: readonly string[];
}

/**
 * The upgrade's steps, in kubeadm's order, starting after `after` (the snapshot and the cluster's
 * verification): each control plane in turn, the first with `kubeadm upgrade apply`, the others
 * with `kubeadm upgrade node`, each draining itself and coming back healthy before the next; then
 * the workers in `maxUnavailable` lanes, each worker drained by its control plane (`hostOf`),
 * upgraded on itself and uncordoned before the next of its lane; then a verification of every node
 * and the API through the load balancer. The steps exist while an upgrade is planned.
 */
export function planUpgradeSteps(
  nodes: readonly UpgradeNode[],
  change: { readonly from: string; readonly to: string },
  after: readonly string[],
  maxUnavailable: number,
  hostOf: (worker: UpgradeNode) => UpgradeNode,
): UpgradeStep[] {
  const steps: UpgradeStep[] = [];
  const id = (subject: string, kind: UpgradeStep["kind"]) => `${subject}/${kind}`;
  const controlPlanes = nodes.filter((n) => n.role === "control-plane");
  const workers = nodes.filter((n) => n.role === "worker");
  let previous: readonly string[] = after;
  for (const [i, cp] of controlPlanes.entries()) {
    steps.push({
      id: id(cp.name, "upgrade"),
      kind: "upgrade",
      node: cp.name,
      subject: cp.name,
      dependsOn: [...previous],
      description:
        `${i === 0 ? "kubeadm upgrade plan + apply" : "kubeadm upgrade node"} to ${change.to}` +
        `${i === controlPlanes.length - 1 ? " (with CoreDNS and kube-proxy: the last control plane)" : ""}; ` +
        "drain itself; kubelet stopped, CRI-O, kubelet and kubectl; static pods back; uncordon",
      rerunWhenReplaced: [cp.name],
    });
    previous = [id(cp.name, "upgrade")];
  }
  const controlPlanesDone = previous;
  const lanes = Math.max(1, maxUnavailable);
  const laneEnds: string[][] = Array.from({ length: lanes }, () => [...controlPlanesDone]);
  for (const [i, worker] of workers.entries()) {
    const lane = i % lanes;
    const host = hostOf(worker);
    steps.push(
      {
        id: id(worker.name, "upgrade-drain"),
        kind: "upgrade-drain",
        node: host.name,
        subject: worker.name,
        dependsOn: laneEnds[lane],
        description: `drain it from ${host.name} (PodDisruptionBudgets respected, bounded)`,
        rerunWhenReplaced: [worker.name],
      },
      {
        id: id(worker.name, "upgrade"),
        kind: "upgrade",
        node: worker.name,
        subject: worker.name,
        dependsOn: [id(worker.name, "upgrade-drain")],
        description: `kubeadm upgrade node to ${change.to}; kubelet stopped, CRI-O, kubelet and kubectl`,
        rerunWhenReplaced: [worker.name],
      },
      {
        id: id(worker.name, "upgrade-uncordon"),
        kind: "upgrade-uncordon",
        node: host.name,
        subject: worker.name,
        dependsOn: [id(worker.name, "upgrade")],
        description: `wait until Ready at ${change.to}, then uncordon it, from ${host.name}`,
        rerunWhenReplaced: [worker.name],
      },
    );
    laneEnds[lane] = [id(worker.name, "upgrade-uncordon")];
  }
  steps.push({
    id: "cluster/upgrade-verify",
    kind: "upgrade-verify",
    node: controlPlanes[0].name,
    subject: "cluster",
    dependsOn: [...new Set(laneEnds.flat())],
    description:
      `every node reports kubelet ${change.to}; the API answers ${change.to} through the load balancer; ` +
      `CoreDNS ${upgradeAddonVersions(change.to).COREDNS_VERSION} and kube-proxy v${change.to} rolled out`,
    rerunWhenReplaced: nodes.map((n) => n.name),
  });
  return steps;
}

/**
 * The addons kubeadm deploys for the target patch, as the upgrade's verification (verify.sh) checks
 * them: the kube-proxy DaemonSet's image tag is the Kubernetes version, the coredns Deployment's the
 * CoreDNS release kubeadm pins for that minor (render/versions.ts). kubeadm upgrades both in the last
 * control plane's `kubeadm upgrade node` (shouldUpgradeAddons, cmd/kubeadm/app/cmd/phases/upgrade/addons.go).
 */
export function upgradeAddonVersions(to: string): { COREDNS_VERSION: string; KUBE_PROXY_VERSION: string } {
  const patch = asPatchVersion(to);
  return {
    COREDNS_VERSION: kubernetesRelease(minorOfVersion(patch)).corednsVersion,
    KUBE_PROXY_VERSION: `v${patch}`,
  };
}

/** What the last deployment's outputs say, as far as an upgrade cares. */
export interface PreviousDeployment {
  readonly kubernetesVersion?: string;
  readonly controlPlaneCount?: number;
  readonly workerCount?: number;
}

/**
 * Why this kubernetesVersion is refused on the running cluster (each naming the key and the allowed
 * next step), and what the change is. An upgrade is also refused together with a change of the
 * node counts: nodes joining or leaving while the control plane moves between versions would join
 * with whichever version answers; one change per pulumi up.
 */
export function upgradeProblems(
  previous: PreviousDeployment,
  target: { kubernetesVersion: string; controlPlaneCount: number; workerCount: number },
): { change: VersionChange; problems: string[] } {
  const change = kubernetesVersionChange(previous.kubernetesVersion, target.kubernetesVersion);
  const problems: string[] = [];
  if (change.kind === "refused") problems.push(`ha-k8s:kubernetesVersion: ${change.problem}`);
  if (change.kind === "upgrade") {
    const scaled = [
      ["controlPlaneCount", previous.controlPlaneCount, target.controlPlaneCount],
      ["workerCount", previous.workerCount, target.workerCount],
    ].filter(([, before, now]) => before !== undefined && before !== now);
    for (const [key, before, now] of scaled) {
      problems.push(
        `ha-k8s:${key}: ${before} -> ${now} in the same pulumi up as the upgrade ${change.from} -> ${change.to} is refused: ` +
          `nodes would join or leave while the control plane changes version; upgrade first (keep ${key} at ${before}), then scale`,
      );
    }
  }
  return { change, problems };
}
