// What we know about Google Compute Engine without asking it: regions with their zones, machine type
// shapes and resource-name rules. Pure: no Pulumi, no I/O.

/**
 * Zones per region (public list at cloud.google.com/compute/docs/regions-zones). Not every region
 * has an "-a" zone (us-east1 is b/c/d, europe-west1 is b/c/d), so defaults come from this table
 * rather than by appending letters. A region missing here still works when `zones` is set.
 */
export const REGION_ZONES: Readonly<Record<string, readonly string[]>> = {
  "africa-south1": ["a", "b", "c"],
  "asia-east1": ["a", "b", "c"],
  "asia-east2": ["a", "b", "c"],
  "asia-northeast1": ["a", "b", "c"],
  "asia-northeast2": ["a", "b", "c"],
  "asia-northeast3": ["a", "b", "c"],
  "asia-south1": ["a", "b", "c"],
  "asia-south2": ["a", "b", "c"],
  "asia-southeast1": ["a", "b", "c"],
  "asia-southeast2": ["a", "b", "c"],
  "australia-southeast1": ["a", "b", "c"],
  "australia-southeast2": ["a", "b", "c"],
  "europe-central2": ["a", "b", "c"],
  "europe-north1": ["a", "b", "c"],
  "europe-north2": ["a", "b", "c"],
  "europe-southwest1": ["a", "b", "c"],
  "europe-west1": ["b", "c", "d"],
  "europe-west2": ["a", "b", "c"],
  "europe-west3": ["a", "b", "c"],
  "europe-west4": ["a", "b", "c"],
  "europe-west6": ["a", "b", "c"],
  "europe-west8": ["a", "b", "c"],
  "europe-west9": ["a", "b", "c"],
  "europe-west10": ["a", "b", "c"],
  "europe-west12": ["a", "b", "c"],
  "me-central1": ["a", "b", "c"],
  "me-central2": ["a", "b", "c"],
  "me-west1": ["a", "b", "c"],
  "northamerica-northeast1": ["a", "b", "c"],
  "northamerica-northeast2": ["a", "b", "c"],
  "northamerica-south1": ["a", "b", "c"],
  "southamerica-east1": ["a", "b", "c"],
  "southamerica-west1": ["a", "b", "c"],
  "us-central1": ["a", "b", "c", "f"],
  "us-east1": ["b", "c", "d"],
  "us-east4": ["a", "b", "c"],
  "us-east5": ["a", "b", "c"],
  "us-south1": ["a", "b", "c"],
  "us-west1": ["a", "b", "c"],
  "us-west2": ["a", "b", "c"],
  "us-west3": ["a", "b", "c"],
  "us-west4": ["a", "b", "c"],
};

export function zonesOfRegion(region: string): string[] | undefined {
  const letters = REGION_ZONES[region];
  return letters?.map((letter) => `${region}-${letter}`);
}

export interface MachineShape {
  readonly vcpus: number;
  readonly memoryMb: number;
}

/** Shared-core E2 types with their fixed shapes. */
const SHARED_CORE: Readonly<Record<string, MachineShape>> = {
  "e2-micro": { vcpus: 2, memoryMb: 1024 },
  "e2-small": { vcpus: 2, memoryMb: 2048 },
  "e2-medium": { vcpus: 2, memoryMb: 4096 },
  "f1-micro": { vcpus: 1, memoryMb: 614 },
  "g1-small": { vcpus: 1, memoryMb: 1740 },
};

/** GB of memory per vCPU for each predefined family and class (GCE machine family docs). */
const MEMORY_GB_PER_VCPU: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  e2: { standard: 4, highmem: 8, highcpu: 1 },
  n1: { standard: 3.75, highmem: 6.5, highcpu: 0.9 },
  n2: { standard: 4, highmem: 8, highcpu: 1 },
  n2d: { standard: 4, highmem: 8, highcpu: 1 },
  n4: { standard: 4, highmem: 8, highcpu: 2 },
  c2: { standard: 4 },
  c2d: { standard: 4, highmem: 8, highcpu: 2 },
  c3: { standard: 4, highmem: 8, highcpu: 2 },
  c3d: { standard: 4, highmem: 8, highcpu: 2 },
  c4: { standard: 3.75, highmem: 7.75, highcpu: 2 },
  c4d: { standard: 3.875, highmem: 7.875, highcpu: 1.875 },
  t2d: { standard: 4 },
  t2a: { standard: 4 },
};

/** Families that accept custom shapes ("custom-N-M" is N1). */
const CUSTOM_FAMILIES = new Set(["e2", "n1", "n2", "n2d", "n4"]);

/**
 * The vCPU count and memory of a GCE machine type name, or undefined for a name we do not
 * recognise: predefined `<family>-<class>-<vcpus>`, shared-core types, and custom types
 * `[<family>-]custom-<vcpus>-<memoryMb>[-ext]`.
 */
export function machineShape(type: string): MachineShape | undefined {
  const shared = SHARED_CORE[type];
  if (shared) return shared;
  const custom = /^(?:([a-z0-9]+)-)?custom-(\d+)-(\d+)(?:-ext)?$/.exec(type);
  if (custom) {
    const family = custom[1] ?? "n1";
    if (!CUSTOM_FAMILIES.has(family)) return undefined;
    return { vcpus: Number(custom[2]), memoryMb: Number(custom[3]) };
  }
  const predefined = /^([a-z0-9]+)-(standard|highmem|highcpu)-(\d+)$/.exec(type);
  if (!predefined) return undefined;
  const perVcpu = MEMORY_GB_PER_VCPU[predefined[1]]?.[predefined[2]];
  if (perVcpu === undefined) return undefined;
  const vcpus = Number(predefined[3]);
  if (vcpus < 1) return undefined;
  return { vcpus, memoryMb: Math.round(vcpus * perVcpu * 1024) };
}

export const KNOWN_MACHINE_FAMILIES = Object.keys(MEMORY_GB_PER_VCPU);

/** GCE resource names: RFC 1035 labels, 1 to 63 characters. */
export const GCE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
