// The one typed, validated cluster configuration. Both `pulumi up` (components/config.ts) and the
// offline render (cli/render.ts) pass their raw stack values through resolveConfig, so both report
// the same problems with the same words, all at once, before anything is created. Pure: no Pulumi.

import { SCHEDULE_FORMS, bucketNameProblem, calendarProblem, createdBucketResourceName } from "./backup";
import { Ipv4Cidr, PRIVATE_RANGES, cidrToString, isPrivate, overlaps, parseCidr } from "./cidr";
import { GCE_NAME, KNOWN_MACHINE_FAMILIES, REGION_ZONES, machineShape, zonesOfRegion } from "./gce";
import {
  ARMORED_KEY_FORM,
  MIRROR_URL_FORM,
  UPSTREAM,
  abbreviate,
  armoredKeyProblem,
  mirrorUrlProblem,
  normaliseArmoredKey,
  normaliseMirrorUrl,
} from "./mirrors";
import { SUPPORTED_KUBERNETES } from "./versions";

export const PROJECT = "ha-k8s";

export interface ClusterConfig {
  /** gcp:project; only `pulumi up` needs it, the render does not. */
  readonly project?: string;
  readonly region: string;
  readonly clusterName: string;
  readonly zones: readonly string[];
  readonly controlPlaneCount: number;
  readonly workerCount: number;
  readonly controlPlaneMachineType: string;
  readonly workerMachineType: string;
  readonly loadBalancerMachineType: string;
  /** 1: one HAProxy VM holding the endpoint address; 2: two behind GCP passthrough load balancers. */
  readonly loadBalancerCount: 1 | 2;
  readonly image: string;
  readonly diskSizeGb: number;
  readonly kubernetesVersion: string;
  readonly subnetCidr: string;
  readonly podCidr: string;
  readonly serviceCidr: string;
  readonly cni: "calico";
  readonly adminCidrs: readonly string[];
  /**
   * A mirror CRI-O pulls docker.io, registry.k8s.io and quay.io images through first
   * (host[:port][/path]); undefined: straight from those registries.
   */
  readonly registryMirror?: string;
  /** Base URL of a pkgs.k8s.io mirror, without a trailing "/"; undefined: https://pkgs.k8s.io. */
  readonly kubernetesPackageMirror?: string;
  /** ASCII-armored key that signs the Kubernetes repository; undefined: its own Release.key. */
  readonly kubernetesPackageKey?: string;
  /** Base URL of a download.opensuse.org/repositories mirror (CRI-O), without a trailing "/". */
  readonly crioPackageMirror?: string;
  /** ASCII-armored key that signs CRI-O's repository; undefined: its own Release.key. */
  readonly crioPackageKey?: string;
  /** kubeadm's imageRepository (host[:port][/path]); undefined: registry.k8s.io, kubeadm's default. */
  readonly imageRepository?: string;
  /** Base URL of a mirror of raw.githubusercontent.com/projectcalico/calico, without a trailing "/". */
  readonly calicoManifestMirror?: string;
  /** A mirror of etcd's GitHub releases (the backups' etcdutl); undefined: GitHub. */
  readonly etcdReleaseMirror?: string;
  /** An existing Cloud Storage bucket for etcd snapshots; empty: the program creates one. */
  readonly backupBucket: string;
  /** Days the created bucket keeps a snapshot. */
  readonly backupRetentionDays: number;
  /** systemd calendar event of the scheduled snapshots. */
  readonly backupSchedule: string;
  /** Workers drained and upgraded at the same time during a Kubernetes upgrade. */
  readonly maxUnavailable: number;
  /** How long a drain may wait for pods to leave (PodDisruptionBudgets) before the upgrade stops. */
  readonly drainTimeoutSeconds: number;
}

type KeyKind = "string" | "integer" | "array";

/** The project keys and their kinds; tests check this against Pulumi.yaml and README.md. */
export const CONFIG_KEYS: Readonly<Record<string, KeyKind>> = {
  clusterName: "string",
  zones: "array",
  controlPlaneCount: "integer",
  workerCount: "integer",
  controlPlaneMachineType: "string",
  workerMachineType: "string",
  loadBalancerMachineType: "string",
  loadBalancerCount: "integer",
  image: "string",
  diskSizeGb: "integer",
  kubernetesVersion: "string",
  subnetCidr: "string",
  podCidr: "string",
  serviceCidr: "string",
  cni: "string",
  adminCidrs: "array",
  registryMirror: "string",
  kubernetesPackageMirror: "string",
  kubernetesPackageKey: "string",
  crioPackageMirror: "string",
  crioPackageKey: "string",
  imageRepository: "string",
  calicoManifestMirror: "string",
  etcdReleaseMirror: "string",
  backupBucket: "string",
  backupRetentionDays: "integer",
  backupSchedule: "string",
  maxUnavailable: "integer",
  drainTimeoutSeconds: "integer",
};

export const SUPPORTED_CNIS = ["calico"] as const;
const DNS_LABEL = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
export const REGISTRY_LOCATION = new RegExp(
  `^${DNS_LABEL}(\\.${DNS_LABEL})+(:\\d{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$`,
);
export const MAX_CONTROL_PLANES = 7;
export const MAX_WORKERS = 5000;
export const MAX_BACKUP_RETENTION_DAYS = 3650;
/** Node prefix length kube-controller-manager allocates from the pod CIDR (its default, /24). */
export const NODE_POD_PREFIX = 24;

/**
 * Address layout inside the subnet (GCE keeps the first two and last two addresses): the API
 * endpoint, then load balancers, control planes and workers in fixed slots, so that every address
 * is known before anything exists and a node keeps its address when its VM is replaced.
 */
export const ADDRESS_OFFSETS = {
  apiEndpoint: 2,
  loadBalancers: 3,
  controlPlanes: 10,
  workers: 20,
} as const;
const GCE_RESERVED_AT_END = 2;

/**
 * Room left after clusterName for the longest suffix render/names.ts appends (a unit test checks
 * every generated name against GCE's 63-character limit at this length).
 */
export const LONGEST_NAME_SUFFIX = 22;

export interface ConfigIssue {
  /** Fully qualified key, e.g. "ha-k8s:workerCount" or "gcp:region". */
  readonly key: string;
  readonly message: string;
}

export interface ResolvedConfig {
  readonly config?: ClusterConfig;
  readonly errors: readonly ConfigIssue[];
  readonly warnings: readonly ConfigIssue[];
}

/**
 * Raw values as they come from a stack: project keys without namespace, provider keys with it
 * ("gcp:region", "gcp:project"). Values may be native YAML values (render) or strings as the
 * Pulumi runtime hands them out (arrays JSON-encoded).
 */
export type RawConfig = Readonly<Record<string, unknown>>;

const qualify = (key: string): string => (key.includes(":") ? key : `${PROJECT}:${key}`);
const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

/** One problem per line, each naming key and value, for errors thrown by preview and render. */
export function formatIssues(title: string, issues: readonly ConfigIssue[]): string {
  return [title, ...issues.map((issue) => `  - ${issue.key}: ${issue.message}`)].join("\n");
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length];
}

class Collector {
  readonly errors: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];
  error(key: string, message: string): void {
    this.errors.push({ key: qualify(key), message });
  }
  warn(key: string, message: string): void {
    this.warnings.push({ key: qualify(key), message });
  }
}

function readString(c: Collector, key: string, value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number") {
    if (key === "kubernetesVersion") {
      c.error(key, `${value} is a YAML number; quote the minor, e.g. "1.36"`);
      return undefined;
    }
    return String(value);
  }
  c.error(key, `${show(value)} is not a string`);
  return undefined;
}

function readInteger(c: Collector, key: string, value: unknown): number | undefined {
  const number =
    typeof value === "number" ? value : typeof value === "string" && /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number)) {
    c.error(key, `${show(value)} is not a whole number`);
    return undefined;
  }
  return number;
}

function readArray(c: Collector, key: string, value: unknown): string[] | undefined {
  let parsed = value;
  if (typeof value === "string") {
    try {
      parsed = JSON.parse(value);
    } catch {
      c.error(key, `${show(value)} is not a list; write a YAML list or a JSON array of strings`);
      return undefined;
    }
  }
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === "string")) {
    c.error(key, `${show(value)} is not a list of strings`);
    return undefined;
  }
  return parsed;
}

/**
 * Machine families GCE knows but refuses with this program's VMs: every boot disk is pd-balanced and
 * every VM boots the one amd64 Ubuntu image. N4, C4 and C4D take Hyperdisk only, no Persistent Disk
 * (cloud.google.com/compute/docs/general-purpose-machines, "Supported disk types"); Tau T2A is Arm
 * (Ampere Altra), so it boots arm64 images only.
 */
export const REFUSED_MACHINE_FAMILIES: Readonly<Record<string, string>> = {
  n4: "takes Hyperdisk boot disks only, and every VM here boots from a pd-balanced disk",
  c4: "takes Hyperdisk boot disks only, and every VM here boots from a pd-balanced disk",
  c4d: "takes Hyperdisk boot disks only, and every VM here boots from a pd-balanced disk",
  t2a: "is Arm (Ampere Altra), and every VM here boots the same amd64 Ubuntu image",
};
const ALLOWED_MACHINE_FAMILIES = KNOWN_MACHINE_FAMILIES.filter((family) => !(family in REFUSED_MACHINE_FAMILIES));

function checkMachineType(c: Collector, key: string, type: string, forNodes: boolean): void {
  const shape = machineShape(type);
  const allowed =
    `<family>-standard|highmem|highcpu-<vCPUs> (families ${ALLOWED_MACHINE_FAMILIES.join(", ")}), ` +
    `e2-micro/small/medium, or [family-]custom-<vCPUs>-<MB>`;
  if (!shape) {
    c.error(key, `"${type}" is not a machine type we know; allowed: ${allowed}`);
    return;
  }
  const family = type.split("-")[0];
  const refusal = REFUSED_MACHINE_FAMILIES[family];
  if (refusal) {
    c.error(key, `"${type}" is not allowed: the ${family} family ${refusal}; allowed: ${allowed}`);
    return;
  }
  if (forNodes && (shape.vcpus < 2 || shape.memoryMb < 4096)) {
    c.error(
      key,
      `"${type}" has ${shape.vcpus} vCPU and ${(shape.memoryMb / 1024).toFixed(2)} GB; ` +
        `kubeadm nodes need at least 2 vCPU and 4 GB (e2-medium or larger)`,
    );
  }
}

function checkCidr(c: Collector, key: string, text: string, privateOnly: boolean): Ipv4Cidr | undefined {
  const parsed = parseCidr(text);
  if ("error" in parsed) {
    c.error(key, `"${text}" ${parsed.error}`);
    return undefined;
  }
  if (privateOnly && !isPrivate(parsed.cidr)) {
    c.error(key, `"${text}" is not a private range; allowed: inside ${PRIVATE_RANGES.join(", ")}`);
    return undefined;
  }
  return parsed.cidr;
}

/** Highest subnet offset the plan uses, i.e. the last worker's slot. */
function lastUsedOffset(workerCount: number): number {
  return ADDRESS_OFFSETS.workers + Math.max(workerCount, 1) - 1;
}

/**
 * Merges stack values over the project defaults, converts and validates them. Collects every
 * problem instead of stopping at the first, so one run shows them all.
 */
export function resolveConfig(stackValues: RawConfig, defaults: RawConfig): ResolvedConfig {
  const c = new Collector();

  for (const key of Object.keys(stackValues)) {
    if (key.includes(":") || key in CONFIG_KEYS) continue;
    const suggestion = Object.keys(CONFIG_KEYS)
      .map((known) => ({ known, distance: editDistance(key.toLowerCase(), known.toLowerCase()) }))
      .sort((a, b) => a.distance - b.distance)[0];
    const hint = suggestion && suggestion.distance <= 3 ? `; did you mean ${PROJECT}:${suggestion.known}?` : "";
    c.error(key, `is not a key of this project${hint} Known keys: ${Object.keys(CONFIG_KEYS).join(", ")}`);
  }

  const pick = (key: string): unknown => stackValues[key] ?? defaults[key];
  const str = (key: string): string | undefined => {
    const value = pick(key);
    if (value === undefined || value === null) {
      c.error(key, "has no value and no default in Pulumi.yaml");
      return undefined;
    }
    return readString(c, key, value);
  };
  const int = (key: string): number | undefined => {
    const value = pick(key);
    if (value === undefined || value === null) {
      c.error(key, "has no value and no default in Pulumi.yaml");
      return undefined;
    }
    return readInteger(c, key, value);
  };
  /** An optional string key: "" when neither the stack nor Pulumi.yaml sets it. */
  const optional = (key: string): string | undefined => {
    const value = pick(key);
    return value === undefined || value === null ? "" : readString(c, key, value);
  };
  const list = (key: string): string[] | undefined => {
    const value = pick(key);
    if (value === undefined || value === null) return [];
    return readArray(c, key, value);
  };

  // gcp:region and gcp:project
  const region = str("gcp:region");
  if (region !== undefined && !/^[a-z]+-[a-z]+\d+$/.test(region)) {
    c.error("gcp:region", `"${region}" is not a GCP region name like europe-west1`);
  }
  const projectValue = pick("gcp:project");
  const project = projectValue === undefined ? undefined : readString(c, "gcp:project", projectValue);
  if (project !== undefined && !/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(project)) {
    c.error("gcp:project", `"${project}" is not a GCP project ID (6-30 lower-case letters, digits, hyphens)`);
  }

  // clusterName: the prefix of every resource; leave room for the longest suffix (names.ts).
  const clusterName = str("clusterName");
  const MAX_NAME = 63 - LONGEST_NAME_SUFFIX;
  if (clusterName !== undefined && (!GCE_NAME.test(clusterName) || clusterName.length > MAX_NAME)) {
    c.error(
      "clusterName",
      `"${clusterName}" is not allowed; use 1-${MAX_NAME} lower-case letters, digits and hyphens, ` +
        `starting with a letter and not ending with a hyphen (GCE names every resource after it)`,
    );
  }

  // Counts
  const controlPlaneCount = int("controlPlaneCount");
  if (controlPlaneCount !== undefined) {
    if (controlPlaneCount < 1 || controlPlaneCount > MAX_CONTROL_PLANES || controlPlaneCount % 2 === 0) {
      c.error(
        "controlPlaneCount",
        `${controlPlaneCount} is not allowed; etcd needs a majority, so use an odd count: 1, 3, 5 or 7`,
      );
    } else if (controlPlaneCount < 3) {
      c.warn(
        "controlPlaneCount",
        `${controlPlaneCount}: a single control plane is not highly available; use 3 or more`,
      );
    }
  }
  const workerCount = int("workerCount");
  if (workerCount !== undefined) {
    if (workerCount < 0 || workerCount > MAX_WORKERS) {
      c.error("workerCount", `${workerCount} is not allowed; use 0 to ${MAX_WORKERS}`);
    } else if (workerCount < 2) {
      c.warn("workerCount", `${workerCount}: fewer than 2 workers leaves workloads without a spare node`);
    }
  }

  // Zones: default from the region table, never by appending letters.
  let zones = list("zones");
  if (zones !== undefined && region !== undefined) {
    const known = zonesOfRegion(region);
    if (zones.length === 0) {
      if (known) {
        zones = known.slice(0, 3);
      } else {
        c.error(
          "gcp:region",
          `"${region}" is not in the region table (render/gce.ts); set ${PROJECT}:zones explicitly, or use one of ${Object.keys(REGION_ZONES).join(", ")}`,
        );
      }
    } else {
      const allowed = known ?? [];
      for (const zone of zones) {
        const inRegion = known
          ? allowed.includes(zone)
          : zone.startsWith(`${region}-`) && /^[a-z]+-[a-z]+\d+-[a-z]$/.test(zone);
        if (!inRegion) {
          c.error(
            "zones",
            `"${zone}" is not a zone of ${region}; allowed: ${known ? allowed.join(", ") : `${region}-<letter>`}`,
          );
        }
      }
      const duplicates = zones.filter((zone, i) => zones!.indexOf(zone) !== i);
      if (duplicates.length > 0) c.error("zones", `${show(zones)} lists ${duplicates.join(", ")} more than once`);
    }
    if (zones.length > 0 && controlPlaneCount !== undefined && controlPlaneCount >= 3 && zones.length < 3) {
      c.warn(
        "zones",
        `${show(zones)}: ${controlPlaneCount} control planes in fewer than 3 zones; one zone outage can cost etcd its majority`,
      );
    }
  }

  // Machine types, image, disk
  const controlPlaneMachineType = str("controlPlaneMachineType");
  if (controlPlaneMachineType !== undefined)
    checkMachineType(c, "controlPlaneMachineType", controlPlaneMachineType, true);
  const workerMachineType = str("workerMachineType");
  if (workerMachineType !== undefined) checkMachineType(c, "workerMachineType", workerMachineType, true);
  const loadBalancerMachineType = str("loadBalancerMachineType");
  if (loadBalancerMachineType !== undefined)
    checkMachineType(c, "loadBalancerMachineType", loadBalancerMachineType, false);

  const loadBalancerCount = int("loadBalancerCount");
  if (loadBalancerCount !== undefined && loadBalancerCount !== 1 && loadBalancerCount !== 2) {
    c.error(
      "loadBalancerCount",
      `${loadBalancerCount} is not allowed; use 1 (one HAProxy VM) or 2 (two, in different zones, behind GCP passthrough load balancers)`,
    );
  } else if (loadBalancerCount === 2 && zones !== undefined && zones.length < 2) {
    c.error("loadBalancerCount", `2 needs at least two zones to put them in; ${PROJECT}:zones lists ${zones.length}`);
  }

  const image = str("image");
  if (image !== undefined) {
    const shaped = /^(https:\/\/|projects\/|[a-z][-a-z0-9]*\/)?[-a-z0-9/.]+$/.test(image);
    if (!shaped || !/ubuntu/.test(image)) {
      c.error(
        "image",
        `"${image}" is not allowed; the node scripts use apt and are written for Ubuntu LTS: ` +
          `use an Ubuntu LTS image family such as ubuntu-os-cloud/ubuntu-2404-lts-amd64`,
      );
    }
  }
  const diskSizeGb = int("diskSizeGb");
  if (diskSizeGb !== undefined && (diskSizeGb < 20 || diskSizeGb > 65536)) {
    c.error("diskSizeGb", `${diskSizeGb} is not allowed; use 20 to 65536 (GB); images and etcd need room`);
  }

  const kubernetesVersion = str("kubernetesVersion");
  if (kubernetesVersion !== undefined && !(kubernetesVersion in SUPPORTED_KUBERNETES)) {
    c.error(
      "kubernetesVersion",
      `"${kubernetesVersion}" is not a supported minor; allowed: ${Object.keys(SUPPORTED_KUBERNETES).join(", ")}`,
    );
  }

  const cni = str("cni");
  if (cni !== undefined && !(SUPPORTED_CNIS as readonly string[]).includes(cni)) {
    c.error("cni", `"${cni}" is not supported; allowed: ${SUPPORTED_CNIS.join(", ")}`);
  }

  // Networks: private, well-formed, non-overlapping, big enough.
  const subnetText = str("subnetCidr");
  const podText = str("podCidr");
  const serviceText = str("serviceCidr");
  const subnet = subnetText === undefined ? undefined : checkCidr(c, "subnetCidr", subnetText, true);
  const pods = podText === undefined ? undefined : checkCidr(c, "podCidr", podText, true);
  const services = serviceText === undefined ? undefined : checkCidr(c, "serviceCidr", serviceText, true);
  if (subnet && (subnet.prefix < 8 || subnet.prefix > 29)) {
    c.error("subnetCidr", `"${subnetText}" is not allowed; GCP subnets are /8 to /29`);
  } else if (subnet && workerCount !== undefined && workerCount >= 0) {
    const needed = lastUsedOffset(workerCount) + 1 + GCE_RESERVED_AT_END;
    if (needed > subnet.size) {
      const prefix = 32 - Math.ceil(Math.log2(needed));
      c.error(
        "subnetCidr",
        `"${subnetText}" has ${subnet.size} addresses but ${workerCount} workers need ${needed} ` +
          `(fixed slots for endpoint, load balancers and control planes, GCE's 4 reserved); use a /${prefix} or larger`,
      );
    }
  }
  const nodes = (controlPlaneCount ?? 0) + (workerCount ?? 0);
  if (pods && pods.prefix > NODE_POD_PREFIX) {
    c.error("podCidr", `"${podText}" is smaller than one node's /${NODE_POD_PREFIX}; use a /16 or larger`);
  } else if (pods && nodes > 2 ** (NODE_POD_PREFIX - pods.prefix)) {
    const prefix = NODE_POD_PREFIX - Math.ceil(Math.log2(nodes));
    c.error(
      "podCidr",
      `"${podText}" holds ${2 ** (NODE_POD_PREFIX - pods.prefix)} node ranges (/${NODE_POD_PREFIX} each) ` +
        `but the cluster has ${nodes} nodes; use a /${prefix} or larger`,
    );
  }
  if (services && (services.prefix < 12 || services.prefix > 24)) {
    c.error("serviceCidr", `"${serviceText}" is not allowed; the API server accepts /12 to /24 here`);
  }
  const ranges: [string, Ipv4Cidr | undefined][] = [
    ["subnetCidr", subnet],
    ["podCidr", pods],
    ["serviceCidr", services],
  ];
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      const [keyA, a] = ranges[i];
      const [keyB, b] = ranges[j];
      if (a && b && overlaps(a, b)) {
        c.error(
          keyB,
          `"${cidrToString(b)}" overlaps ${PROJECT}:${keyA} "${cidrToString(a)}"; the three ranges must not overlap`,
        );
      }
    }
  }

  const adminCidrs = list("adminCidrs");
  if (adminCidrs !== undefined) {
    if (adminCidrs.length === 0) {
      c.error("adminCidrs", 'is empty; list the IPv4 ranges that may reach SSH and the API, e.g. ["203.0.113.0/24"]');
    }
    for (const text of adminCidrs) checkCidr(c, "adminCidrs", text, false);
    if (adminCidrs.includes("0.0.0.0/0")) {
      c.warn(
        "adminCidrs",
        "includes 0.0.0.0/0: SSH to the jump host and the Kubernetes API are open to the whole internet; " +
          `restrict it with: pulumi config set --path '${PROJECT}:adminCidrs[0]' <your-range>`,
      );
    }
  }

  // A registry location as containers-registries.conf(5) takes it: no scheme, lower case, a host
  // with a dot (what tells a registry from a Docker Hub path), an optional port and path.
  const registryMirror = optional("registryMirror");
  if (registryMirror && !REGISTRY_LOCATION.test(registryMirror)) {
    c.error(
      "registryMirror",
      `"${registryMirror}" is not a registry location; use host[:port][/path] without a scheme, in lower case, ` +
        `e.g. mirror.gcr.io or europe-docker.pkg.dev/my-project/docker-hub (or leave it empty for no mirror)`,
    );
  }
  // Mirrors for a restricted egress (render/mirrors.ts has the rules): package repositories and their
  // keys, kubeadm's image repository, Calico's manifests.
  const mirrorUrl = (key: string, upstream: string): string | undefined => {
    const value = optional(key);
    const problem = value ? mirrorUrlProblem(value) : undefined;
    if (problem) {
      c.error(
        key,
        `"${value}" ${problem}; allowed: ${MIRROR_URL_FORM}, e.g. https://mirror.example.com/path (or leave it empty for ${upstream})`,
      );
    }
    return value ? normaliseMirrorUrl(value) : value;
  };
  const packageKey = (key: string, repository: string): string | undefined => {
    const value = optional(key);
    const problem = value ? armoredKeyProblem(value) : undefined;
    if (problem) {
      c.error(
        key,
        `${show(abbreviate(value!))} is not a repository key: it ${problem}; allowed: ${ARMORED_KEY_FORM} ` +
          `(or leave it empty to download the ${repository} repository's own Release.key)`,
      );
    }
    return value && !problem ? normaliseArmoredKey(value) : value;
  };
  const kubernetesPackageMirror = mirrorUrl("kubernetesPackageMirror", UPSTREAM.kubernetesPackages);
  const kubernetesPackageKey = packageKey("kubernetesPackageKey", "Kubernetes");
  const crioPackageMirror = mirrorUrl("crioPackageMirror", UPSTREAM.crioPackages);
  const crioPackageKey = packageKey("crioPackageKey", "CRI-O");
  const calicoManifestMirror = mirrorUrl("calicoManifestMirror", UPSTREAM.calicoManifests);
  const etcdReleaseMirror = mirrorUrl("etcdReleaseMirror", UPSTREAM.etcdReleases);
  const imageRepositoryValue = optional("imageRepository");
  if (imageRepositoryValue && !REGISTRY_LOCATION.test(imageRepositoryValue)) {
    c.error(
      "imageRepository",
      `"${imageRepositoryValue}" is not an image repository; use host[:port][/path] without a scheme, in lower case, ` +
        `e.g. registry.example.com/k8s or 192.0.2.10:5000 (or leave it empty for ${UPSTREAM.imageRepository})`,
    );
  }
  // kubeadm's own default named explicitly is the default: the same images, and no change to refuse.
  const imageRepository = imageRepositoryValue === UPSTREAM.imageRepository ? "" : imageRepositoryValue;

  // etcd backups (render/backup.ts has the naming and schedule rules).
  const backupBucket = str("backupBucket");
  if (backupBucket !== undefined && backupBucket !== "") {
    const problem = bucketNameProblem(backupBucket);
    if (problem) c.error("backupBucket", `"${backupBucket}" is not a Cloud Storage bucket name: it ${problem}`);
    if ("backupRetentionDays" in stackValues) {
      c.warn(
        "backupRetentionDays",
        `has no effect with ${PROJECT}:backupBucket set: the program sets the lifecycle of the bucket it creates only; ` +
          `give "${backupBucket}" its own lifecycle rule`,
      );
    }
  } else if (
    backupBucket === "" &&
    clusterName !== undefined &&
    bucketNameProblem(createdBucketResourceName(clusterName))
  ) {
    c.error(
      "backupBucket",
      `is empty, so the program would create "${createdBucketResourceName(clusterName)}-…", which Cloud Storage refuses ` +
        `(it ${bucketNameProblem(createdBucketResourceName(clusterName))}); name an existing bucket or change ${PROJECT}:clusterName`,
    );
  }
  const backupRetentionDays = int("backupRetentionDays");
  if (
    backupRetentionDays !== undefined &&
    (backupRetentionDays < 1 || backupRetentionDays > MAX_BACKUP_RETENTION_DAYS)
  ) {
    c.error(
      "backupRetentionDays",
      `${backupRetentionDays} is not allowed; use 1 to ${MAX_BACKUP_RETENTION_DAYS} (days a snapshot is kept)`,
    );
  }
  const backupSchedule = str("backupSchedule");
  const scheduleProblem = backupSchedule === undefined ? undefined : calendarProblem(backupSchedule);
  if (scheduleProblem) {
    c.error("backupSchedule", `"${backupSchedule}" ${scheduleProblem}; allowed: ${SCHEDULE_FORMS}`);
  }

  // Upgrades: how many workers at once, how long a drain may take.
  const maxUnavailable = int("maxUnavailable");
  if (maxUnavailable !== undefined && (maxUnavailable < 1 || maxUnavailable > MAX_WORKERS)) {
    c.error(
      "maxUnavailable",
      `${maxUnavailable} is not allowed; use 1 to ${MAX_WORKERS} (workers drained and upgraded at the same time)`,
    );
  } else if (
    maxUnavailable !== undefined &&
    workerCount !== undefined &&
    workerCount >= 2 &&
    maxUnavailable > workerCount / 2
  ) {
    c.warn(
      "maxUnavailable",
      `${maxUnavailable} of ${workerCount} workers may be drained at once during an upgrade: more than half the capacity`,
    );
  }
  const drainTimeoutSeconds = int("drainTimeoutSeconds");
  if (drainTimeoutSeconds !== undefined && (drainTimeoutSeconds < 60 || drainTimeoutSeconds > 86400)) {
    c.error(
      "drainTimeoutSeconds",
      `${drainTimeoutSeconds} is not allowed; use 60 to 86400 (seconds a drain may wait for pods to leave)`,
    );
  }

  if (c.errors.length > 0) return { errors: c.errors, warnings: c.warnings };
  return {
    config: {
      project,
      region: region!,
      clusterName: clusterName!,
      zones: zones!,
      controlPlaneCount: controlPlaneCount!,
      workerCount: workerCount!,
      controlPlaneMachineType: controlPlaneMachineType!,
      workerMachineType: workerMachineType!,
      loadBalancerMachineType: loadBalancerMachineType!,
      loadBalancerCount: loadBalancerCount as 1 | 2,
      image: image!,
      diskSizeGb: diskSizeGb!,
      kubernetesVersion: kubernetesVersion!,
      subnetCidr: subnetText!,
      podCidr: podText!,
      serviceCidr: serviceText!,
      cni: cni as "calico",
      adminCidrs: adminCidrs!,
      registryMirror: registryMirror || undefined,
      kubernetesPackageMirror: kubernetesPackageMirror || undefined,
      kubernetesPackageKey: kubernetesPackageKey || undefined,
      crioPackageMirror: crioPackageMirror || undefined,
      crioPackageKey: crioPackageKey || undefined,
      imageRepository: imageRepository || undefined,
      calicoManifestMirror: calicoManifestMirror || undefined,
      etcdReleaseMirror: etcdReleaseMirror || undefined,
      backupBucket: backupBucket!,
      backupRetentionDays: backupRetentionDays!,
      backupSchedule: backupSchedule!,
      maxUnavailable: maxUnavailable!,
      drainTimeoutSeconds: drainTimeoutSeconds!,
    },
    errors: [],
    warnings: c.warnings,
  };
}
