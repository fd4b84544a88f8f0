// Rules about changes between two deployments of the same stack. Pure.

import type { ClusterConfig } from "./config";
import { upgradeProblems } from "./upgrade";

/**
 * Control planes leave one at a time (each removal waits for the previous one), and each leaves
 * etcd before its VM goes. Still, one update may remove at most (n - 1) / 2 of n control planes, so
 * that a majority of the members that existed before the update survives it even if a removal goes
 * wrong half-way. Bigger cuts take several updates; a cut that no odd count allows (3 -> 1) is
 * refused with the way out. Returns why a change is refused, or undefined when it is allowed.
 */
export function controlPlaneChangeProblem(previous: number | undefined, next: number): string | undefined {
  if (previous === undefined || next >= previous) return undefined;
  const majority = Math.floor(previous / 2) + 1;
  if (next >= majority) return undefined;
  const step = [previous - 2, previous - 4, previous - 6].find((n) => n >= majority && n >= 1);
  const way = step
    ? `scale down in steps (${previous} -> ${step} first), running pulumi up after each`
    : `keep ${previous}, or rebuild the stack with ${next}`;
  return (
    `refusing to go from ${previous} to ${next} control planes in one update: fewer than a majority (${majority}) ` +
    `of the ${previous} current etcd members would remain, so one removal going wrong half-way would cost the ` +
    `cluster its quorum; ${way}`
  );
}

/**
 * Settings baked into the running cluster. The networks and names: changing them would rebuild every
 * machine at once. imageRepository: kubeadm init wrote it into the kubeadm-config ConfigMap, which
 * every later join and `kubeadm upgrade` reads (not our config), and init never runs again on a
 * running cluster; only the CRI-O pause image of machines prepared or upgraded later would follow
 * the new value, so the nodes would pull from both repositories, and from a repository that was
 * meant to be left (restricted egress) without anyone noticing. Refused rather than half applied.
 */
export const IMMUTABLE_SETTINGS = [
  "clusterName",
  "region",
  "subnetCidr",
  "podCidr",
  "serviceCidr",
  "imageRepository",
] as const;
export type ImmutableSettings = Record<(typeof IMMUTABLE_SETTINGS)[number], string>;

/**
 * What a deployment from before a setting existed had: its outputs lack the setting, and the cluster
 * was built with this value ("" for imageRepository: registry.k8s.io, kubeadm's default).
 */
const VALUE_BEFORE_IT_EXISTED: Partial<ImmutableSettings> = { imageRepository: "" };

const keyName = (key: (typeof IMMUTABLE_SETTINGS)[number]) => (key === "region" ? "gcp:region" : `ha-k8s:${key}`);

export function immutableSettingsProblems(
  previous: Partial<ImmutableSettings> | undefined,
  next: ImmutableSettings,
): string[] {
  if (!previous) return [];
  return IMMUTABLE_SETTINGS.flatMap((key) => {
    const before = previous[key] ?? VALUE_BEFORE_IT_EXISTED[key];
    if (before === undefined || before === next[key]) return [];
    if (key === "imageRepository") {
      const shown = (value: string) => (value === "" ? '"" (registry.k8s.io)' : `"${value}"`);
      return [
        `${keyName(key)}: ${shown(before)} -> ${shown(next[key])} is refused: kubeadm init wrote it into the ` +
          `cluster's kubeadm-config ConfigMap, which every join and upgrade reads, and init never runs again; only ` +
          `the CRI-O pause image of machines prepared later would follow, so the nodes would pull from both. ` +
          `Keep ${shown(before)}${before === "" ? " (registryMirror pulls registry.k8s.io through a mirror)" : ""}, ` +
          `or build a new stack with the new one.`,
      ];
    }
    return [
      `${keyName(key)}: "${before}" -> "${next[key]}" is refused: the running cluster is ` +
        `built on it (addresses, certificates, etcd); changing it would replace every machine at once and lose etcd. ` +
        `Build a new stack instead.`,
    ];
  });
}

/** What the stack's last deployment left in its outputs, as the next one reads them back. */
export interface PreviousOutputs {
  readonly controlPlaneCount?: number;
  readonly immutableSettings?: Partial<ImmutableSettings>;
  readonly kubernetesVersion?: string;
  readonly createdWithKubernetes?: string;
  /** Workers in the `nodes` output. */
  readonly workerCount?: number;
}

/** The settings a deployment records (output immutableSettings) for the next to compare with. */
export function immutableSettingsOf(config: ClusterConfig): ImmutableSettings {
  return {
    clusterName: config.clusterName,
    region: config.region,
    subnetCidr: config.subnetCidr,
    podCidr: config.podCidr,
    serviceCidr: config.serviceCidr,
    imageRepository: config.imageRepository ?? "",
  };
}

/**
 * Every reason to refuse going from the last deployment to this configuration, all at once:
 * settings the cluster is built on, control planes removed beyond etcd's majority, and the upgrade
 * rules (components/guard.ts in preview and up; the real-cluster tier's lab the same way).
 */
export function changeProblems(previous: PreviousOutputs, config: ClusterConfig): string[] {
  const problems = immutableSettingsProblems(previous.immutableSettings, immutableSettingsOf(config));
  const scale = controlPlaneChangeProblem(previous.controlPlaneCount, config.controlPlaneCount);
  if (scale) problems.push(`ha-k8s:controlPlaneCount: ${scale}`);
  problems.push(...upgradeProblems(previous, config).problems);
  return problems;
}

/** The one message for refused changes, in preview and in the offline render alike. */
export function formatRefusal(problems: readonly string[]): string {
  return `Refusing this change:\n  - ${problems.join("\n  - ")}`;
}
