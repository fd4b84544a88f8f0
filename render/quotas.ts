// What a plan holds of the region's Compute Engine allocation quotas, and the comparison with the
// quotas `gcloud compute regions describe <region> --format=json` reports. Pure: no Pulumi, no I/O.
//
// Why check before `pulumi up`: a resource quota is not retried. terraform-provider-google (which
// @pulumi/gcp bridges) retries, for every request, only what its defaultErrorRetryPredicates name
// (google/transport/error_retry_predicates.go): 429/500/502/503 (isCommonRetryableErrorCode), a 403
// "Quota exceeded for quota metric '...' and limit '... per minute'" (is403QuotaExceededPerMinuteError:
// the Compute API's rate limits) and a 403 CONCURRENT_OPERATIONS_QUOTA_EXCEEDED
// (is403ConcurrentOperationsQuotaError). An allocation quota refused ("Quota 'CPUS' exceeded. Limit:
// 24.0 in region ...") matches none of them, so the VMs past the limit fail and the cluster is left
// half-built. Hence the preflight in tools/deploy.sh.
//
// Which regional metric counts what (Compute Engine "Allocation quotas",
// cloud.google.com/compute/resource-usage):
// - vCPUs: E2, N1 (and custom-N-M), f1-micro and g1-small count against CPUS (from the docs as recalled, not
//   read: the Compute API's Quota.Metric enum also lists E2_CPUS, whose use was not checked); other series have their
//   own metric (N2_CPUS, N2D_CPUS, C2_CPUS, ...). All of them also count against the project-wide
//   CPUS_ALL_REGIONS, which `gcloud compute project-info describe` reports (not checked here).
// - VM instances: INSTANCES.
// - Disks: pd-balanced and pd-ssd count against SSD_TOTAL_GB ("Persistent Disk SSD (GB)");
//   DISKS_TOTAL_GB counts pd-standard only, which the program does not use.
// - Addresses: every reserved internal address counts against INTERNAL_ADDRESSES; the reserved
//   external address against STATIC_ADDRESSES, and, attached to a VM or a forwarding rule, against
//   IN_USE_ADDRESSES. Cloud NAT's automatically allocated addresses do not count toward per-project
//   quotas (cloud.google.com/nat/docs/ports-and-addresses), so they are not in the totals.

import type { ClusterConfig } from "./config";
import { machineShape } from "./gce";
import type { LoadBalancing, PlannedNode } from "./plan";

/** The boot disk type of every VM (components/vm.ts). */
export const BOOT_DISK_TYPE = "pd-balanced";

/** Machine series with a vCPU quota of their own; every other series counts against CPUS. */
const OWN_CPU_QUOTA: Readonly<Record<string, string>> = {
  n2: "N2_CPUS",
  n2d: "N2D_CPUS",
  n4: "N4_CPUS",
  c2: "C2_CPUS",
  c2d: "C2D_CPUS",
  c3: "C3_CPUS",
  c3d: "C3D_CPUS",
  c4: "C4_CPUS",
  c4d: "C4D_CPUS",
  t2d: "T2D_CPUS",
  t2a: "T2A_CPUS",
};

/** The regional quota metric a machine type's vCPUs count against. */
export function cpuQuotaMetric(machineType: string): string {
  const family = machineType.startsWith("custom-") ? "n1" : machineType.split("-")[0];
  return OWN_CPU_QUOTA[family] ?? "CPUS";
}

/** The regional quota metric a disk type's GB count against. */
export function diskQuotaMetric(diskType: string): string {
  return diskType === "pd-standard" ? "DISKS_TOTAL_GB" : "SSD_TOTAL_GB";
}

/** What the plan holds at once in its region; plan.json carries it. */
export interface PlannedTotals {
  readonly region: string;
  readonly instances: number;
  readonly vcpus: number;
  readonly diskGb: number;
  readonly internalAddresses: number;
  readonly externalAddresses: number;
  /** Per regional quota metric (as `gcloud compute regions describe` names it), the amount held. */
  readonly quotas: Readonly<Record<string, number>>;
}

const add = (into: Record<string, number>, metric: string, amount: number) => {
  if (amount > 0) into[metric] = (into[metric] ?? 0) + amount;
};

export function planTotals(
  config: Pick<ClusterConfig, "region" | "diskSizeGb">,
  nodes: readonly PlannedNode[],
  loadBalancing: Pick<LoadBalancing, "mode">,
): PlannedTotals {
  const quotas: Record<string, number> = {};
  let vcpus = 0;
  for (const node of nodes) {
    // An unknown type is refused by the configuration's validation before a plan exists.
    const cpus = machineShape(node.machineType)?.vcpus ?? 0;
    vcpus += cpus;
    add(quotas, cpuQuotaMetric(node.machineType), cpus);
  }
  add(quotas, "INSTANCES", nodes.length);
  const diskGb = nodes.length * config.diskSizeGb;
  add(quotas, diskQuotaMetric(BOOT_DISK_TYPE), diskGb);
  // One reserved internal address per VM (a lone HAProxy VM's is the endpoint address itself); with
  // two HAProxy VMs the endpoint is one more, on the internal forwarding rule.
  const internalAddresses = nodes.length + (loadBalancing.mode === "passthrough" ? 1 : 0);
  add(quotas, "INTERNAL_ADDRESSES", internalAddresses);
  // The public API and jump-host address: reserved (static) and in use (by the VM or the forwarding rule).
  const externalAddresses = 1;
  add(quotas, "STATIC_ADDRESSES", externalAddresses);
  add(quotas, "IN_USE_ADDRESSES", externalAddresses);
  return {
    region: config.region,
    instances: nodes.length,
    vcpus,
    diskGb,
    internalAddresses,
    externalAddresses,
    quotas: Object.fromEntries(Object.entries(quotas).sort(([a], [b]) => a.localeCompare(b))),
  };
}

/** The part of `gcloud compute regions describe <region> --format=json` this reads. */
export interface RegionQuotas {
  readonly name?: string;
  readonly quotas?: readonly { readonly metric: string; readonly limit: number; readonly usage: number }[];
}

/** The part of `pulumi stack export` this reads: the stack's resources with their inputs. */
export interface StackState {
  readonly deployment?: {
    readonly resources?: readonly { readonly type: string; readonly inputs?: Record<string, unknown> }[];
  };
}

const regionOfZone = (zone: string) => zone.replace(/-[a-z]$/, "");

/**
 * What the stack's deployed resources already hold in the region (their usage is in the region's
 * `usage`, yet a new `pulumi up` keeps them): a running cluster checks only what it adds.
 */
export function heldByStack(state: StackState, region: string): Record<string, number> {
  const held: Record<string, number> = {};
  for (const resource of state.deployment?.resources ?? []) {
    const inputs = resource.inputs ?? {};
    if (resource.type === "gcp:compute/instance:Instance") {
      if (typeof inputs.zone !== "string" || regionOfZone(inputs.zone) !== region) continue;
      const machineType = typeof inputs.machineType === "string" ? inputs.machineType : "";
      add(held, cpuQuotaMetric(machineType), machineShape(machineType)?.vcpus ?? 0);
      add(held, "INSTANCES", 1);
      const disk = (inputs.bootDisk as { initializeParams?: { size?: unknown; type?: unknown } } | undefined)
        ?.initializeParams;
      if (typeof disk?.size === "number") {
        add(held, diskQuotaMetric(typeof disk.type === "string" ? disk.type : BOOT_DISK_TYPE), disk.size);
      }
    } else if (resource.type === "gcp:compute/address:Address") {
      if (inputs.region !== region) continue;
      if (inputs.addressType === "INTERNAL") add(held, "INTERNAL_ADDRESSES", 1);
      else {
        add(held, "STATIC_ADDRESSES", 1);
        add(held, "IN_USE_ADDRESSES", 1);
      }
    }
  }
  return held;
}

export interface QuotaCheck {
  /** One line per quota the plan would exceed, naming the metric and the amount needed. */
  readonly shortfalls: string[];
  /** Metrics the region does not report (not checked). */
  readonly unchecked: string[];
}

/**
 * Compares the plan's totals, less what the stack already holds, with each quota's free amount
 * (limit - usage) in the plan's region.
 */
export function compareQuotas(
  totals: PlannedTotals,
  region: RegionQuotas,
  held: Readonly<Record<string, number>> = {},
  project?: string,
): QuotaCheck {
  const shortfalls: string[] = [];
  const unchecked: string[] = [];
  const where = project ? `?project=${project}` : "";
  for (const [metric, total] of Object.entries(totals.quotas)) {
    const needed = Math.max(0, total - (held[metric] ?? 0));
    if (needed === 0) continue;
    const quota = region.quotas?.find((q) => q.metric === metric);
    if (!quota) {
      unchecked.push(metric);
      continue;
    }
    const free = Math.max(0, quota.limit - quota.usage);
    if (needed <= free) continue;
    const already = held[metric] ? `, ${held[metric]} of them already held by this stack` : "";
    shortfalls.push(
      `Quota ${metric} in ${totals.region} is too low: the plan needs ${total}${already}, so ${needed} more; ` +
        `${free} free (limit ${quota.limit}, in use ${quota.usage}). Ask for at least ${quota.usage + needed} ` +
        `(https://console.cloud.google.com/iam-admin/quotas${where}) or make the plan smaller.`,
    );
  }
  return { shortfalls, unchecked };
}

/**
 * The Google APIs `pulumi up` calls: Compute Engine (network, VMs, addresses, load balancers), IAM
 * (the nodes' service account) and Cloud Storage (the etcd snapshot bucket, or the upload right on
 * the backupBucket you name: backups are always on).
 */
export const REQUIRED_SERVICES = ["compute.googleapis.com", "iam.googleapis.com", "storage.googleapis.com"] as const;

/** The names in `gcloud services list --enabled --format=json` (config.name, or the name's last part). */
export function enabledServiceNames(list: readonly { name?: string; config?: { name?: string } }[]): string[] {
  return list.map((s) => s.config?.name ?? s.name?.split("/").pop() ?? "").filter((n) => n !== "");
}

/** One line naming the APIs to enable and the command, or undefined when all are enabled. */
export function missingServicesLine(enabled: readonly string[], project: string): string | undefined {
  const missing = REQUIRED_SERVICES.filter((s) => !enabled.includes(s));
  if (missing.length === 0) return undefined;
  return (
    `Project ${project} does not have ${missing.join(", ")} enabled (pulumi up would fail with accessNotConfigured): ` +
    `run 'gcloud services enable ${missing.join(" ")} --project ${project}', then this again.`
  );
}
