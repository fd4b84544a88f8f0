// The deployment plan: which machines exist, where, with which address; which firewall rules;
// which bootstrap steps run on which machine after which others. The Pulumi components create
// exactly this (one resource or command per entry) and the render writes it as plan.json, so the
// offline view and `pulumi up` cannot disagree. Pure: no Pulumi, no I/O.

import { createdBucketPlaceholder } from "./backup";
import { hostAddress, parseCidr } from "./cidr";
import { ADDRESS_OFFSETS, ClusterConfig } from "./config";
import { API_PORT, names } from "./names";
import { planFirewall, planLoadBalancing } from "./network-plan";
import { PlannedTotals, planTotals } from "./quotas";
import { kubernetesVersionChange, planUpgradeSteps } from "./upgrade";
import { SUPPORTED_KUBERNETES, asPatchVersion, kubernetesRelease, minorOfVersion } from "./versions";

export type Role = "control-plane" | "worker" | "loadbalancer";

export interface PlannedNode {
  readonly name: string;
  readonly role: Role;
  /** 1-based index within its role. */
  readonly index: number;
  readonly zone: string;
  readonly machineType: string;
  readonly internalIp: string;
  readonly tags: readonly string[];
}

export interface FirewallRule {
  readonly name: string;
  readonly description: string;
  readonly protocol: "tcp" | "udp" | "icmp" | "all";
  readonly ports: readonly string[];
  readonly sourceRanges: readonly string[];
  readonly sourceTags: readonly string[];
  readonly targetTags: readonly string[];
}

export type StepKind =
  | "network"
  | "vm"
  | "load-balancer"
  | "login"
  | "haproxy"
  | "prepare"
  | "init"
  | "cni"
  | "credentials"
  | "join"
  | "member"
  | "ready"
  | "removal"
  | "verify"
  | "kubeconfig"
  | "backup-bucket"
  | "backup"
  | "snapshot"
  | "upgrade"
  | "upgrade-drain"
  | "upgrade-uncordon"
  | "upgrade-verify";

/** Steps that create GCP resources rather than run a command on a machine. */
export const INFRASTRUCTURE_KINDS: ReadonlySet<StepKind> = new Set<StepKind>([
  "network",
  "vm",
  "load-balancer",
  "backup-bucket",
]);
/** The machine that runs `pulumi up`: login checks run there (local commands), not over the provider's SSH. */
export const DEPLOYER = "deployer";
export const runsOnMachine = (step: Step): boolean => !INFRASTRUCTURE_KINDS.has(step.kind) && step.node !== DEPLOYER;
export const runsOnDeployer = (step: Step): boolean => step.node === DEPLOYER;
/**
 * Steps that only act when Pulumi deletes them (a worker's drain and Node deletion): creating one
 * opens no SSH session (@pulumi/command's Create returns at once without a `create` command,
 * provider/pkg/provider/remote/commandController.go), so hosting them costs a control plane nothing
 * while nodes join.
 */
export const DELETE_ONLY_KINDS: ReadonlySet<StepKind> = new Set<StepKind>(["removal"]);
export const NETWORK_STEP = "cluster/network";
/** The load balancer tier (HAProxy VMs and, with two, GCP's forwarding rules): the SSH path to every machine. */
export const LOAD_BALANCER_STEP = "cluster/load-balancer";
/** The snapshot bucket and the nodes' right to create objects in it (components/backup.ts). */
export const BACKUP_BUCKET_STEP = "cluster/backup-bucket";
/**
 * The snapshot before risky changes, on the first control plane. It runs again whenever
 * controlPlaneCount or kubernetesVersion changes; steps that change the cluster that way (upgrade
 * steps) depend on it, so they wait for the snapshot.
 */
export const SNAPSHOT_STEP = "cluster/snapshot";
export const SNAPSHOT_STEP_KIND: StepKind = "snapshot";

export interface Step {
  /** "<subject node>/<kind>", unique. */
  readonly id: string;
  readonly kind: StepKind;
  /**
   * The machine the step runs on (for "vm": the machine it creates; "cluster" for GCP-wide steps;
   * DEPLOYER for login checks, which run where `pulumi up` runs).
   */
  readonly node: string;
  /**
   * What the step is about: a node (differs from `node` for steps a control plane runs for another
   * node), "workers" (all workers at once) or "cluster".
   */
  readonly subject: string;
  /** The VMs whose replacement re-runs this step from scratch (a new machine needs it again). */
  readonly rerunWhenReplaced: readonly string[];
  /**
   * Ids this step had in earlier versions of the program: the engine must see the same resource
   * (an alias), not delete the old one, whose stored delete command would still run.
   */
  readonly formerIds?: readonly string[];
  readonly dependsOn: readonly string[];
  readonly description: string;
}

export interface Plan {
  readonly cluster: {
    readonly name: string;
    readonly region: string;
    readonly kubernetesVersion: string;
    readonly kubernetesPatch: string;
    /**
     * The patch the cluster was created with (output createdWithKubernetes): what init was given,
     * and what new machines get while no cluster answers yet (prepare-node.sh). It never changes
     * when the cluster is upgraded or a pin in render/versions.ts moves, so neither re-runs those.
     */
    readonly createdWithVersion: string;
    readonly cni: string;
    readonly podCidr: string;
    readonly serviceCidr: string;
    readonly subnetCidr: string;
  };
  /** controlPlaneEndpoint: a reserved internal address, fixed for the cluster's life. */
  readonly endpoint: { readonly internalIp: string; readonly port: number };
  readonly loadBalancing: LoadBalancing;
  readonly nodes: readonly PlannedNode[];
  readonly firewall: readonly FirewallRule[];
  readonly steps: readonly Step[];
  readonly backup: PlannedBackup;
  /** A Kubernetes upgrade of the running cluster, when the configured version is newer than it runs. */
  readonly upgrade?: PlannedUpgrade;
  /**
   * What the plan holds of the region's allocation quotas (vCPUs, instances, disk GB, addresses;
   * render/quotas.ts): `npm run deploy` compares it with the region's free quota before pulumi up.
   */
  readonly totals: PlannedTotals;
}

export interface PlannedUpgrade {
  /** The patch the cluster runs. */
  readonly from: string;
  /** The patch it moves to (kubernetesPatch). */
  readonly to: string;
  readonly maxUnavailable: number;
  readonly drainTimeoutSeconds: number;
}

/** What the stack's last deployment left (its outputs): empty on a first deployment. */
export interface DeployedState {
  /** The patch the cluster runs (output kubernetesVersion); a minor is accepted too (the offline render). */
  readonly kubernetesVersion?: string;
  /** The patch the cluster was created with (output createdWithKubernetes). */
  readonly createdWithVersion?: string;
}

/** Where and when etcd snapshots go (render/backup.ts, components/backup.ts). */
export interface PlannedBackup {
  /** backupBucket, or the bucket the program creates (named by Pulumi at deploy time: a placeholder here). */
  readonly bucket: string;
  readonly createBucket: boolean;
  readonly retentionDays: number;
  readonly schedule: string;
  /** The etcd release kubeadm runs, whose etcdutl the control planes get. */
  readonly etcdVersion: string;
}

/**
 * How the endpoint address reaches HAProxy. "vm": it is the one HAProxy VM's own address.
 * "passthrough": two HAProxy VMs in different zones behind a GCP internal passthrough load balancer
 * on the endpoint address and an external one on the public address, both health-checking
 * HAProxy's monitor endpoint (503 when HAProxy has no API server behind it).
 */
export interface LoadBalancing {
  readonly mode: "vm" | "passthrough";
  readonly healthCheck?: { readonly name: string; readonly port: number; readonly path: string };
  /** One zonal group per HAProxy VM, named `name` whatever VM it holds (the VM joins by a membership). */
  readonly instanceGroups: readonly { readonly name: string; readonly zone: string; readonly instance: string }[];
  readonly forwardingRules: readonly {
    readonly name: string;
    readonly scheme: "INTERNAL" | "EXTERNAL";
    /** The endpoint address, or the external address (known to GCP only). */
    readonly address: string;
    readonly ports: readonly string[];
  }[];
}

export { API_PORT, MONITOR_PATH, MONITOR_PORT, SSH_USER, names } from "./names";
export { EXTERNAL_ADDRESS_PLACEHOLDER, HEALTH_CHECK_RANGES } from "./network-plan";

function planNodes(config: ClusterConfig): PlannedNode[] {
  const parsed = parseCidr(config.subnetCidr);
  if ("error" in parsed) throw new Error(`subnetCidr ${config.subnetCidr} ${parsed.error}`);
  const subnet = parsed.cidr;
  const zoneOf = (i: number) => config.zones[i % config.zones.length];
  const tag = (role: Role | "node") => names.tag(config.clusterName, role);
  const nodes: PlannedNode[] = [];
  for (let i = 0; i < config.loadBalancerCount; i++) {
    nodes.push({
      name: names.node(config.clusterName, "loadbalancer", i + 1),
      role: "loadbalancer",
      index: i + 1,
      zone: zoneOf(i),
      machineType: config.loadBalancerMachineType,
      // One HAProxy VM holds the endpoint address itself; two leave it to the internal load balancer.
      internalIp: hostAddress(
        subnet,
        config.loadBalancerCount === 1 ? ADDRESS_OFFSETS.apiEndpoint : ADDRESS_OFFSETS.loadBalancers + i,
      ),
      tags: [tag("loadbalancer")],
    });
  }
  // Control planes first, one per zone in turn, so the first three land on distinct zones.
  for (let i = 0; i < config.controlPlaneCount; i++) {
    nodes.push({
      name: names.node(config.clusterName, "control-plane", i + 1),
      role: "control-plane",
      index: i + 1,
      zone: zoneOf(i),
      machineType: config.controlPlaneMachineType,
      internalIp: hostAddress(subnet, ADDRESS_OFFSETS.controlPlanes + i),
      tags: [tag("control-plane"), tag("node")],
    });
  }
  for (let i = 0; i < config.workerCount; i++) {
    nodes.push({
      name: names.node(config.clusterName, "worker", i + 1),
      role: "worker",
      index: i + 1,
      zone: zoneOf(i),
      machineType: config.workerMachineType,
      internalIp: hostAddress(subnet, ADDRESS_OFFSETS.workers + i),
      tags: [tag("worker"), tag("node")],
    });
  }
  return nodes;
}

const stepId = (subject: string, kind: StepKind) => `${subject}/${kind}`;

/**
 * Bootstrap order. Every machine first proves that an SSH login works (a check from the deploying
 * machine, bounded; the provider's own dial retries do not survive a refused first login), then
 * prepares; init waits for HAProxy (kubeadm reaches the API through the endpoint); the CNI follows
 * init; control planes join one at a time, each after the previous one is Ready with a healthy etcd
 * member (etcd admits one learner at a time); workers join in parallel right after init and each
 * waits for its own Node to become Ready with its kubelet's credentials. Before every join a control
 * plane refreshes the join credentials, so late joins work.
 *
 * Work per worker stays off the first control plane: a worker's readiness check runs on the worker,
 * and its delete-time drain is a delete-only step spread round-robin over the control planes.
 * The longest chain depends on the control-plane count only, never on the worker count.
 */
function planSteps(nodes: readonly PlannedNode[]): Step[] {
  const steps: Step[] = [];
  const add = (
    kind: StepKind,
    node: string,
    subject: string,
    dependsOn: string[],
    description: string,
    rerunWhenReplaced: string[] = nodes.some((n) => n.name === subject) ? [subject] : [],
  ) => steps.push({ id: stepId(subject, kind), kind, node, subject, dependsOn, description, rerunWhenReplaced });

  const loadBalancers = nodes.filter((n) => n.role === "loadbalancer");
  const controlPlanes = nodes.filter((n) => n.role === "control-plane");
  const workers = nodes.filter((n) => n.role === "worker");
  const first = controlPlanes[0];

  // Machines need only the subnet to exist; commands on them also need the firewall (SSH) and
  // Cloud NAT (packages), so they wait for the whole network.
  add("network", "cluster", "cluster", [], "VPC, subnet, Cloud Router + NAT, firewall rules");
  for (const n of nodes) add("vm", n.name, n.name, [], `create the ${n.role} VM in ${n.zone}`);
  add(
    "load-balancer",
    "cluster",
    "cluster",
    loadBalancers.map((lb) => stepId(lb.name, "vm")),
    "HAProxy VMs ready for SSH; with two, GCP's internal and external passthrough load balancers",
  );
  // Every machine's first step waits for a proven login; the login goes through the load balancer
  // tier (the SSH path) and needs the firewall, so it waits for both.
  for (const n of nodes) {
    add(
      "login",
      DEPLOYER,
      n.name,
      [stepId(n.name, "vm"), NETWORK_STEP, LOAD_BALANCER_STEP],
      "wait (bounded) until an SSH login to the machine works and cloud-init has finished",
    );
  }
  for (const lb of loadBalancers) {
    add("haproxy", lb.name, lb.name, [stepId(lb.name, "login")], "install HAProxy, check and load its config");
  }
  for (const n of [...controlPlanes, ...workers]) {
    add(
      "prepare",
      n.name,
      n.name,
      [stepId(n.name, "login")],
      "swap off, kernel modules, sysctl, CRI-O and its registry mirror, kubelet/kubeadm/kubectl",
    );
  }
  add(
    "init",
    first.name,
    first.name,
    [stepId(first.name, "prepare"), ...loadBalancers.map((lb) => stepId(lb.name, "haproxy"))],
    "kubeadm init with the Pulumi-generated CA, token and certificate key",
  );
  add("cni", first.name, first.name, [stepId(first.name, "init")], "install Calico (operator + Installation)");

  // Control planes: strictly one after the other. The first join does not need the CNI (static
  // pods use the host network), so Calico installs meanwhile; "Ready" (member) does need it.
  const joined = new Map<string, string>([[first.name, stepId(first.name, "init")]]);
  let previousReady = stepId(first.name, "init");
  for (const cp of controlPlanes.slice(1)) {
    add(
      "credentials",
      first.name,
      cp.name,
      [previousReady],
      "refresh bootstrap token and upload control-plane certificates",
    );
    add(
      "join",
      cp.name,
      cp.name,
      [stepId(cp.name, "prepare"), stepId(cp.name, "credentials")],
      "kubeadm join --control-plane",
    );
    add(
      "member",
      first.name,
      cp.name,
      [stepId(cp.name, "join"), stepId(first.name, "cni")],
      "wait until Ready with a healthy etcd member; on delete drain and remove it",
    );
    previousReady = stepId(cp.name, "member");
    joined.set(cp.name, previousReady);
  }
  // Workers: in parallel, behind init only. One token refresh serves them all; it runs again
  // whenever a worker is added or replaced, so it always precedes the joins of the moment.
  const workerCredentials = stepId("workers", "credentials");
  if (workers.length > 0) {
    add(
      "credentials",
      first.name,
      "workers",
      [stepId(first.name, "init")],
      "refresh the bootstrap token before worker joins",
      workers.map((w) => w.name),
    );
  }
  for (const w of workers) {
    add("join", w.name, w.name, [stepId(w.name, "prepare"), workerCredentials], "kubeadm join");
    add(
      "ready",
      w.name,
      w.name,
      [stepId(w.name, "join"), stepId(first.name, "cni")],
      "wait until its own Node is Ready, with the kubelet's credentials",
    );
    // Deleted before the worker's join (kubeadm reset) and before its host control plane leaves.
    const host = removalHost(controlPlanes, w);
    add(
      "removal",
      host.name,
      w.name,
      [stepId(w.name, "join"), joined.get(host.name)!],
      `only on delete: drain the worker and delete its Node, from ${host.name}`,
    );
    // Until the workers' readiness moved onto them, this was "<worker>/member" on the first control
    // plane, whose stored delete command drains and deletes the Node: the same resource, renamed.
    steps.push({ ...steps.pop()!, formerIds: [stepId(w.name, "member")] });
  }
  add(
    "kubeconfig",
    first.name,
    first.name,
    [stepId(first.name, "init")],
    "read admin.conf (never super-admin.conf) for the stack output",
  );
  add(
    "verify",
    first.name,
    "cluster",
    [...new Set([previousReady, stepId(first.name, "cni")]), ...workers.map((w) => stepId(w.name, "ready"))],
    "all nodes Ready, one healthy etcd member per control plane, API answers through the load balancer; join credentials revoked",
    // Any machine replaced (pulumi up --replace) means the cluster must be verified again.
    nodes.map((n) => n.name),
  );
  return steps;
}

/** The control plane that hosts a worker's delete-time drain: round-robin, so no one carries them all. */
export function removalHost(controlPlanes: readonly PlannedNode[], worker: PlannedNode): PlannedNode {
  return controlPlanes[(worker.index - 1) % controlPlanes.length];
}

/**
 * Backups: the bucket; on every control plane, once prepared, the scheduled snapshot (service +
 * timer + etcdutl); on the first control plane, once it runs etcd, the snapshot before risky
 * changes. None of them is on the way to a Ready cluster (the longest chain is unchanged).
 */
function planBackupSteps(nodes: readonly PlannedNode[]): Step[] {
  const controlPlanes = nodes.filter((n) => n.role === "control-plane");
  const first = controlPlanes[0];
  return [
    {
      id: BACKUP_BUCKET_STEP,
      kind: "backup-bucket",
      node: "cluster",
      subject: "cluster",
      dependsOn: [],
      description: "Cloud Storage bucket for etcd snapshots; the nodes' service account may create objects in it",
      rerunWhenReplaced: [],
    },
    ...controlPlanes.map((cp) => ({
      id: stepId(cp.name, "backup"),
      kind: "backup" as const,
      node: cp.name,
      subject: cp.name,
      dependsOn: [stepId(cp.name, "prepare"), BACKUP_BUCKET_STEP],
      description: "etcdutl, and the systemd timer that snapshots etcd to Cloud Storage (the etcd leader uploads)",
      rerunWhenReplaced: [cp.name],
    })),
    {
      id: SNAPSHOT_STEP,
      kind: SNAPSHOT_STEP_KIND,
      node: first.name,
      subject: "cluster",
      dependsOn: [stepId(first.name, "init"), stepId(first.name, "backup")],
      description:
        "etcd snapshot to Cloud Storage before risky changes: re-runs when controlPlaneCount or kubernetesVersion " +
        "changes, before removed control planes leave",
      rerunWhenReplaced: [],
    },
  ];
}

export function buildPlan(config: ClusterConfig, deployed: DeployedState = {}): Plan {
  const release = kubernetesRelease(config.kubernetesVersion);
  const change = kubernetesVersionChange(deployed.kubernetesVersion, config.kubernetesVersion);
  if (change.kind === "refused") throw new Error(`ha-k8s:kubernetesVersion: ${change.problem}`);
  const createdWithVersion = asPatchVersion(deployed.createdWithVersion ?? deployed.kubernetesVersion ?? release.patch);
  const nodes = planNodes(config);
  const parsed = parseCidr(config.subnetCidr);
  if ("error" in parsed) throw new Error(`subnetCidr ${config.subnetCidr} ${parsed.error}`);
  const endpoint = hostAddress(parsed.cidr, ADDRESS_OFFSETS.apiEndpoint);
  const loadBalancing = planLoadBalancing(config, nodes, endpoint);
  return {
    cluster: {
      name: config.clusterName,
      region: config.region,
      kubernetesVersion: config.kubernetesVersion,
      kubernetesPatch: release.patch,
      createdWithVersion,
      cni: config.cni,
      podCidr: config.podCidr,
      serviceCidr: config.serviceCidr,
      subnetCidr: config.subnetCidr,
    },
    endpoint: { internalIp: endpoint, port: API_PORT },
    loadBalancing,
    nodes,
    firewall: planFirewall(config),
    steps: [
      ...planSteps(nodes),
      ...planBackupSteps(nodes),
      // An upgrade starts once the cluster as configured is verified and etcd is snapshotted.
      ...(change.kind === "upgrade"
        ? planUpgradeSteps(nodes, change, [SNAPSHOT_STEP, "cluster/verify"], config.maxUnavailable, (w) =>
            removalHost(
              nodes.filter((n) => n.role === "control-plane"),
              w as PlannedNode,
            ),
          )
        : []),
    ],
    backup: {
      bucket: config.backupBucket || createdBucketPlaceholder(config.clusterName),
      createBucket: config.backupBucket === "",
      retentionDays: config.backupRetentionDays,
      schedule: config.backupSchedule,
      // etcdutl follows the etcd that runs: during an upgrade still the old one (the snapshot before
      // the upgrade is taken by it); the next pulumi up moves it.
      etcdVersion: (change.kind === "upgrade" && runningRelease(change.from)?.etcdVersion) || release.etcdVersion,
    },
    ...(change.kind === "upgrade"
      ? {
          upgrade: {
            from: change.from,
            to: change.to,
            maxUnavailable: config.maxUnavailable,
            drainTimeoutSeconds: config.drainTimeoutSeconds,
          },
        }
      : {}),
    totals: planTotals(config, nodes, loadBalancing),
  };
}

/** The supported release of a running patch's minor, if it is still supported. */
function runningRelease(patch: string) {
  return SUPPORTED_KUBERNETES[minorOfVersion(patch)];
}

/** The plan with the bucket Pulumi named at deploy time (a created bucket's name is random). */
export function withBackupBucket(plan: Plan, bucket: string): Plan {
  return { ...plan, backup: { ...plan.backup, bucket } };
}

/** Length (in steps) of the longest dependency chain, and one such chain. */
export function longestChain(steps: readonly Step[]): { length: number; chain: string[] } {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const memo = new Map<string, string[]>();
  const visit = (id: string, trail: Set<string>): string[] => {
    const cached = memo.get(id);
    if (cached) return cached;
    if (trail.has(id)) throw new Error(`dependency cycle through ${id}`);
    const step = byId.get(id);
    if (!step) throw new Error(`unknown step ${id}`);
    trail.add(id);
    let best: string[] = [];
    for (const dep of step.dependsOn) {
      const chain = visit(dep, trail);
      if (chain.length > best.length) best = chain;
    }
    trail.delete(id);
    const result = [...best, id];
    memo.set(id, result);
    return result;
  };
  let chain: string[] = [];
  for (const s of steps) {
    const c = visit(s.id, new Set());
    if (c.length > chain.length) chain = c;
  }
  return { length: chain.length, chain };
}
