// The policy rules as pure functions over a resource's type and inputs, so the tests can run them on
// hand-built resources and on everything the real program registers under mocks. policies.ts wraps
// them for @pulumi/policy. No Pulumi imports here.

import { machineShape } from "../render/gce";

export type Environment = "dev" | "prod";

export interface Resource {
  readonly type: string;
  readonly name: string;
  readonly props: Readonly<Record<string, unknown>>;
}

export interface Violation {
  readonly rule: string;
  readonly resource?: string;
  readonly message: string;
}

export const INSTANCE = "gcp:compute/instance:Instance";
export const FIREWALL = "gcp:compute/firewall:Firewall";
export const BUCKET = "gcp:storage/bucket:Bucket";
const SENSITIVE_PORTS: readonly [number, number][] = [
  [22, 22],
  [6443, 6443],
  [2379, 2380],
  [10250, 10250],
];

const roleOf = (r: Resource): string | undefined =>
  (r.props.labels as Record<string, string> | undefined)?.["ha-k8s-role"];
const isNode = (r: Resource) => r.type === INSTANCE && ["control-plane", "worker"].includes(roleOf(r) ?? "");

function portRange(port: string): [number, number] {
  const [low, high] = port.split("-").map(Number);
  return [low, high ?? low];
}

/** prod: no firewall rule opens SSH, the API, etcd or the kubelet to 0.0.0.0/0. */
export function noWorldOpenSensitivePorts(r: Resource, env: Environment): Violation[] {
  if (env !== "prod" || r.type !== FIREWALL) return [];
  const ranges = (r.props.sourceRanges as string[] | undefined) ?? [];
  if (!ranges.includes("0.0.0.0/0")) return [];
  const allows = (r.props.allows as { protocol: string; ports?: string[] }[] | undefined) ?? [];
  const opened = allows.flatMap((a) =>
    a.protocol === "all" || !a.ports || a.ports.length === 0
      ? [[0, 65535] as [number, number]]
      : a.ports.map(portRange),
  );
  const hit = SENSITIVE_PORTS.filter(([low, high]) => opened.some(([a, b]) => a <= high && low <= b));
  return hit.length === 0
    ? []
    : [
        {
          rule: "no-world-open-sensitive-ports",
          resource: r.name,
          message: `firewall ${r.name} opens ${hit.map(([a, b]) => (a === b ? a : `${a}-${b}`)).join(", ")} to 0.0.0.0/0; restrict ha-k8s:adminCidrs`,
        },
      ];
}

/** Control planes and workers have at least 2 vCPU and 4 GB (kubeadm's minimum). */
export function nodeMachineTypeBigEnough(r: Resource): Violation[] {
  if (!isNode(r)) return [];
  const type = String(r.props.machineType ?? "");
  const shape = machineShape(type);
  if (shape && shape.vcpus >= 2 && shape.memoryMb >= 4096) return [];
  return [
    {
      rule: "node-machine-type",
      resource: r.name,
      message: `${r.name} is ${type}; nodes need at least 2 vCPU and 4 GB`,
    },
  ];
}

/** Control planes and workers have no external IP. */
export function noExternalIpOnNodes(r: Resource): Violation[] {
  if (!isNode(r)) return [];
  const nics = (r.props.networkInterfaces as { accessConfigs?: unknown[] }[] | undefined) ?? [];
  const exposed = nics.some((nic) => (nic.accessConfigs ?? []).length > 0);
  return exposed
    ? [{ rule: "no-external-ip-on-nodes", resource: r.name, message: `${r.name} has an external IP` }]
    : [];
}

/** Every VM is a Shielded VM: Secure Boot, vTPM, integrity monitoring. */
export function shieldedVm(r: Resource): Violation[] {
  if (r.type !== INSTANCE) return [];
  const shielded = r.props.shieldedInstanceConfig as Record<string, unknown> | undefined;
  const on = ["enableSecureBoot", "enableVtpm", "enableIntegrityMonitoring"].every((k) => shielded?.[k] === true);
  return on
    ? []
    : [
        {
          rule: "shielded-vm",
          resource: r.name,
          message: `${r.name} is not a Shielded VM (Secure Boot, vTPM, integrity monitoring)`,
        },
      ];
}

/**
 * Every bucket (the etcd snapshots hold every Secret of the cluster) has public access prevention
 * enforced and uniform bucket-level access (IAM only, no object ACLs) - @pulumi/gcp storage.Bucket's
 * publicAccessPrevention and uniformBucketLevelAccess.
 */
export function bucketNotPublic(r: Resource): Violation[] {
  if (r.type !== BUCKET) return [];
  const missing = [
    ...(r.props.publicAccessPrevention === "enforced" ? [] : ['public access prevention "enforced"']),
    ...(r.props.uniformBucketLevelAccess === true ? [] : ["uniform bucket-level access"]),
  ];
  return missing.length === 0
    ? []
    : [{ rule: "bucket-not-public", resource: r.name, message: `bucket ${r.name} lacks ${missing.join(" and ")}` }];
}

/** prod: an odd number of control planes, at least 3 (etcd needs a majority to survive a loss). */
export function controlPlaneQuorum(resources: readonly Resource[], env: Environment): Violation[] {
  if (env !== "prod") return [];
  const count = resources.filter((r) => r.type === INSTANCE && roleOf(r) === "control-plane").length;
  if (count >= 3 && count % 2 === 1) return [];
  return [{ rule: "control-plane-quorum", message: `${count} control planes; prod needs an odd number, at least 3` }];
}

export const RESOURCE_RULES = [
  noWorldOpenSensitivePorts,
  nodeMachineTypeBigEnough,
  noExternalIpOnNodes,
  shieldedVm,
  bucketNotPublic,
];

/** Every violation of every rule, for a whole stack. */
export function checkStack(resources: readonly Resource[], env: Environment): Violation[] {
  return [
    ...resources.flatMap((r) => RESOURCE_RULES.flatMap((rule) => rule(r, env))),
    ...controlPlaneQuorum(resources, env),
  ];
}
