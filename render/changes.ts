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
 * project: the GCP provider puts it on every resource, so a run that resolves another one (an
 * environment variable in CI) would build the whole cluster again there and delete this one.
 * diskSizeGb: the boot disk's initialize_params.size is ForceNew in terraform-provider-google 7.x
 * (resource_compute_instance.go; #12124), and the instances do not ignore it, so a change would
 * replace every VM at once, all control planes included.
 */
export const IMMUTABLE_SETTINGS = [
  "clusterName",
  "region",
  "project",
  "subnetCidr",
  "podCidr",
  "serviceCidr",
  "imageRepository",
  "diskSizeGb",
] as const;
type ImmutableKey = (typeof IMMUTABLE_SETTINGS)[number];
export interface ImmutableSettings {
  readonly clusterName: string;
  readonly region: string;
  /** gcp:project as the GCP provider resolves it; absent when nothing names one (a bare preview). */
  readonly project?: string;
  readonly subnetCidr: string;
  readonly podCidr: string;
  readonly serviceCidr: string;
  readonly imageRepository: string;
  readonly diskSizeGb: number;
}

/**
 * What a deployment from before a setting existed had: its outputs lack the setting, and the cluster
 * was built with this value ("" for imageRepository: registry.k8s.io, kubeadm's default). Settings
 * recorded later without such a value (project, diskSizeGb) are compared from the next deployment on.
 */
const VALUE_BEFORE_IT_EXISTED: Partial<ImmutableSettings> = { imageRepository: "" };

const keyName = (key: ImmutableKey) =>
  key === "region" ? "gcp:region" : key === "project" ? "gcp:project" : `ha-k8s:${key}`;

export function immutableSettingsProblems(
  previous: Partial<ImmutableSettings> | undefined,
  next: ImmutableSettings,
): string[] {
  if (!previous) return [];
  return IMMUTABLE_SETTINGS.flatMap((key) => {
    const before = previous[key] ?? VALUE_BEFORE_IT_EXISTED[key];
    const after = next[key];
    if (before === undefined || after === undefined || before === after) return [];
    if (key === "imageRepository") {
      const shown = (value: unknown) => (value === "" ? '"" (registry.k8s.io)' : `"${String(value)}"`);
      return [
        `${keyName(key)}: ${shown(before)} -> ${shown(after)} is refused: kubeadm init wrote it into the ` +
          `cluster's kubeadm-config ConfigMap, which every join and upgrade reads, and init never runs again; only ` +
          `the CRI-O pause image of machines prepared later would follow, so the nodes would pull from both. ` +
          `Keep ${shown(before)}${before === "" ? " (registryMirror pulls registry.k8s.io through a mirror)" : ""}, ` +
          `or build a new stack with the new one.`,
      ];
    }
    if (key === "project") {
      return [
        `${keyName(key)}: "${before}" -> "${after}" is refused: every resource of this stack lives in "${before}", ` +
          `and the GCP provider would build the whole cluster again in "${after}" and delete this one. The project ` +
          `comes from gcp:project, else the first of GOOGLE_PROJECT, GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT, ` +
          `CLOUDSDK_CORE_PROJECT in the environment: run pulumi config set gcp:project ${before}, or build a new ` +
          `stack for "${after}".`,
      ];
    }
    if (key === "diskSizeGb") {
      return [
        `${keyName(key)}: ${before} -> ${after} is refused: a boot disk's size cannot change on an existing VM ` +
          `(the GCP provider replaces the VM), so every VM would be replaced at once, all control planes included, ` +
          `and etcd would lose its quorum. Keep ${before}; a cluster with other disk sizes is a new stack.`,
      ];
    }
    return [
      `${keyName(key)}: "${before}" -> "${after}" is refused: the running cluster is ` +
        `built on it (addresses, certificates, etcd); changing it would replace every machine at once and lose etcd. ` +
        `Build a new stack instead.`,
    ];
  });
}

/** An HAProxy VM of a deployment (the `nodes` output). */
export interface DeployedLoadBalancer {
  readonly name: string;
  readonly zone: string;
}

/** What the stack's last deployment left in its outputs, as the next one reads them back. */
export interface PreviousOutputs {
  readonly controlPlaneCount?: number;
  readonly immutableSettings?: Partial<ImmutableSettings>;
  readonly kubernetesVersion?: string;
  readonly createdWithKubernetes?: string;
  /** Workers in the `nodes` output. */
  readonly workerCount?: number;
  /** The HAProxy VMs in the `nodes` output. */
  readonly loadBalancers?: readonly DeployedLoadBalancer[];
}

/**
 * The settings a deployment records (output immutableSettings) for the next to compare with.
 * environmentProject: the project the GCP provider falls back to when gcp:project is unset.
 */
export function immutableSettingsOf(config: ClusterConfig, environmentProject?: string): ImmutableSettings {
  const project = config.project ?? environmentProject;
  return {
    clusterName: config.clusterName,
    region: config.region,
    ...(project ? { project } : {}),
    subnetCidr: config.subnetCidr,
    podCidr: config.podCidr,
    serviceCidr: config.serviceCidr,
    imageRepository: config.imageRepository ?? "",
    diskSizeGb: config.diskSizeGb,
  };
}

/**
 * Changes of the HAProxy tier GCP cannot carry out in one update. 2 -> 1: the lone VM needs the
 * endpoint and public addresses, which the forwarding rules hold until the update's deletions at its
 * end, so it would fail on every retry with both HAProxy VMs gone. Another zone for a VM of two: its
 * instance group moves to the new zone while the VM stays (VMs ignore zone changes), and GCE refuses
 * a member from another zone.
 */
export function loadBalancerChangeProblems(
  previous: readonly DeployedLoadBalancer[] | undefined,
  config: ClusterConfig,
): string[] {
  if (!previous || previous.length < 2) return [];
  if (config.loadBalancerCount < previous.length) {
    return [
      `ha-k8s:loadBalancerCount: ${previous.length} -> ${config.loadBalancerCount} is refused: the one HAProxy VM ` +
        `would need the endpoint and public addresses, which the GCP load balancers' forwarding rules hold until the ` +
        `end of the update, so the update would fail with both HAProxy VMs already gone and the API unreachable. ` +
        `Keep ${previous.length}, or build a new stack with ${config.loadBalancerCount} ` +
        `(docs/operating.md, "No single point of failure: two HAProxy VMs").`,
    ];
  }
  // The zone planNodes (render/plan.ts) gives HAProxy VM i: the zones in turn.
  const zoneOf = (i: number) => config.zones[i % config.zones.length];
  const moved = previous.flatMap((vm, i) => (vm.zone === zoneOf(i) ? [] : [`${vm.name} ${vm.zone} -> ${zoneOf(i)}`]));
  if (moved.length === 0) return [];
  return [
    `ha-k8s:zones: ${JSON.stringify(config.zones)} would move the instance groups of the two HAProxy VMs ` +
      `(${moved.join(", ")}) while the VMs stay where they are (a zone change applies to new VMs only), which GCE ` +
      `refuses. Keep ${previous.map((vm) => vm.zone).join(" and ")} as the first ${previous.length} zones, in that ` +
      `order; the zones after them may change.`,
  ];
}

/**
 * Every reason to refuse going from the last deployment to this configuration, all at once:
 * settings the cluster is built on, HAProxy changes GCP cannot carry out, control planes removed
 * beyond etcd's majority, and the upgrade rules (components/guard.ts in preview and up; the real-cluster tier's lab the same way).
 */
export function changeProblems(
  previous: PreviousOutputs,
  config: ClusterConfig,
  environmentProject?: string,
): string[] {
  const problems = immutableSettingsProblems(
    previous.immutableSettings,
    immutableSettingsOf(config, environmentProject),
  );
  problems.push(...loadBalancerChangeProblems(previous.loadBalancers, config));
  const scale = controlPlaneChangeProblem(previous.controlPlaneCount, config.controlPlaneCount);
  if (scale) problems.push(`ha-k8s:controlPlaneCount: ${scale}`);
  problems.push(...upgradeProblems(previous, config).problems);
  return problems;
}

/** The one message for refused changes, in preview and in the offline render alike. */
export function formatRefusal(problems: readonly string[]): string {
  return `Refusing this change:\n  - ${problems.join("\n  - ")}`;
}
