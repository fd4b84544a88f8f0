// Kubernetes upgrades of a running cluster, the way kubeadm's own procedure does them
// (kubernetes.io "Upgrading kubeadm clusters"): one minor at a time; kubeadm upgrade apply on one
// control plane, kubeadm upgrade node on the others one after another, then each node drained, its
// kubelet and kubectl (and CRI-O, which follows the minor) upgraded, and uncordoned. Pure.

import { SUPPORTED_KUBERNETES, kubernetesRelease } from "./versions";

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
  const to = parseKubernetesVersion(target)!;
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
  return {
    kind: "upgrade",
    from: fromPatch === undefined ? minorOf(from) : `${minorOf(from)}.${fromPatch}`,
    to: target,
  };
}
