// Turns each bootstrap step of the plan into what runs on a machine: the bundle piped to
// `sudo bash -s`, the command `pulumi destroy` runs, and the files the offline render shows. The
// Pulumi bootstrap component and cli/render.ts both call renderStepCommand, so the render is
// exactly what `pulumi up` sends (deploy-time secrets and the external IP aside). Pure.

import { BACKUP_UNIT, backupVariables, renderBackupEnvFile, renderBackupService, renderBackupTimer } from "./backup";
import { StagedFile, renderBundle } from "./bundle";
import { calicoManifestUrls, renderCalicoResources } from "./calico";
import { ClusterConfig } from "./config";
import { REGISTRIES_DROP_IN_PATH, renderCrioDropIn, renderRegistriesDropIn } from "./crio";
import { renderHaproxyForPlan } from "./haproxy";
import {
  ControlPlaneKeys,
  EndpointAddresses,
  JOIN_CREDENTIALS_TTL_HOURS,
  JoinSecrets,
  renderInitConfiguration,
  renderJoinConfiguration,
} from "./kubeadm";
import { DELETE_ONLY_KINDS, Plan, PlannedNode, SSH_USER, Step, StepKind, runsOnDeployer } from "./plan";
import { SEALED_OUTPUT_ITERATIONS, SEALED_OUTPUT_PREFIX } from "./secrets";
import { upgradeAddonVersions } from "./upgrade";
import {
  SUPPORTED_KUBERNETES,
  crioAptRepo,
  etcdReleaseUrl,
  kubernetesAptRepo,
  kubernetesRelease,
  minorOfVersion,
  releaseTable,
} from "./versions";

/** Everything decided at deploy time: join secrets, the cluster CA, the SSH key and the external address. */
export interface DeployValues extends JoinSecrets, EndpointAddresses {
  readonly caCertPem: string;
  readonly caKeyPem: string;
  /** Seals the kubeconfig step's output (render/secrets.ts openSealedOutput); secret. */
  readonly outputKey: string;
  /** The etcd CA, the front-proxy CA and the service-account key pair (secret keys). */
  readonly controlPlaneKeys: ControlPlaneKeys;
  /** OpenSSH private key of the per-stack key pair; login checks on the deploying machine use it. */
  readonly sshPrivateKey: string;
}

export type StagedFileKind =
  "kubeadm-config" | "haproxy-config" | "manifest" | "registries-config" | "systemd-unit" | "other";

export interface StepFile extends StagedFile {
  readonly kind: StagedFileKind;
}

export interface StepCommand {
  readonly step: Step;
  /**
   * Piped to `bash -s` (as root on a machine, as the user running `pulumi up` for login checks);
   * undefined for delete-only steps, which do nothing when created.
   */
  readonly bundle?: string;
  /** Files the bundle stages, for the offline render and the artifact checks. */
  readonly files: readonly StepFile[];
  /** Runs when Pulumi deletes the step (best effort, bounded); undefined when nothing is to undo. */
  readonly deleteCommand?: string;
  /** True when the bundle (and so possibly the output) carries secrets. */
  readonly secret: boolean;
}

/** The `create`/`update` command of every step on a machine: the bundle arrives on stdin. */
export const RUN_BUNDLE_COMMAND = "sudo bash -s";
/** The same for login checks, which run as the user running `pulumi up`, where it runs. */
export const RUN_LOCAL_BUNDLE_COMMAND = "bash -s";
/** Upper bound on a delete-time action, so `pulumi destroy` never waits on a broken cluster. */
export const DELETE_TIMEOUT_SECONDS = 300;
/** Upper bound on a machine's login check: a fresh GCE VM accepts logins within a few minutes. */
export const LOGIN_TIMEOUT_SECONDS = 600;
export const ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf";
/** The kubelet's own credentials (system:node:<name>): enough to read its own Node object. */
export const KUBELET_KUBECONFIG = "/etc/kubernetes/kubelet.conf";
const DELETE_HEREDOC = "HA_K8S_DELETE";
/**
 * The staged signing keys of the package repositories (kubernetesPackageKey, crioPackageKey):
 * add_apt_repo (scripts/lib.sh) installs a staged key instead of downloading the repository's
 * Release.key. Public keys, so neither secret nor removed after the step.
 */
export const PACKAGE_KEY_FILES = { kubernetes: "kubernetes-release.key", crio: "cri-o-release.key" } as const;
/** The Pulumi resource name of a step ("<node>/join" -> "<node>-join"). */
export function stepResourceName(stepId: string): string {
  return stepId.replace("/", "-");
}

/**
 * How long a step's command may run. 40 minutes covers every bounded wait of a step; the upgrade
 * steps that drain a node (a control plane's upgrade, a worker's drain) get drainTimeoutSeconds on
 * top. Pulumi's customTimeouts do not stop a remote command (pulumi-command's remote
 * commandOutputs.go calls session.Run without the context; only the dial sees the deadline), so the
 * bundle enforces the budget itself on the machine (STEP_KILL_GRACE_SECONDS, render/bundle.ts):
 * `timeout` stops the script 2 minutes before the customTimeouts shown to Pulumi run out. A delete
 * command is bounded by its own `timeout` (DELETE_TIMEOUT_SECONDS).
 */
export function stepTimeouts(plan: Plan, step: Step): { create: string; update: string; delete: string } {
  const runFor = `${stepMinutes(plan, step)}m`;
  return { create: runFor, update: runFor, delete: `${Math.ceil(DELETE_TIMEOUT_SECONDS / 60) + 5}m` };
}

/** The budget the bundle's `timeout` gives a step's script on its machine, in seconds. */
export function stepBudgetSeconds(plan: Plan, step: Step): number {
  return stepMinutes(plan, step) * 60 - 120;
}

function stepMinutes(plan: Plan, step: Step): number {
  const drains =
    plan.upgrade !== undefined &&
    (step.kind === "upgrade-drain" || (step.kind === "upgrade" && roleOf(plan, step.subject) === "control-plane"));
  return 40 + (drains ? Math.ceil(plan.upgrade!.drainTimeoutSeconds / 60) : 0);
}

function roleOf(plan: Plan, nodeName: string): string | undefined {
  return plan.nodes.find((n) => n.name === nodeName)?.role;
}

/** The exit status of a delete-time script that refuses to go on (scripts/member-remove.sh). */
const DELETE_REFUSED_EXIT = 75;

/** Steps whose bundle carries secrets (token, keys) or whose output does (kubeconfig). */
const SECRET_KINDS: ReadonlySet<StepKind> = new Set<StepKind>(["login", "init", "credentials", "join", "kubeconfig"]);
/** What each kind undoes when Pulumi deletes it. */
const DELETE_SCRIPTS: Partial<Record<StepKind, string>> = {
  join: "leave.sh",
  member: "member-remove.sh",
  removal: "member-remove.sh",
};

/**
 * The annotation on every Node naming the GCE instance id of its machine, set at join (join.sh,
 * kubeadm-init.sh, from the metadata server). The delete actions compare it with the instance id in
 * their command, so a delete created for a machine that was lost and recreated (same name, same
 * address) leaves the new one alone: pulumi-command's Delete runs the *stored* delete over the
 * stored connection (provider/pkg/provider/remote/commandController.go, v1.2.1), and the engine
 * replaces the old steps only when they register, after the new VM has joined
 * (pkg/resource/deploy/step_generator.go).
 */
export const INSTANCE_ID_ANNOTATION = "ha-k8s.io/instance-id";

/** What the offline render shows for a machine's instance id, which GCE assigns at deploy time. */
export function instanceIdPlaceholder(nodeName: string): string {
  return `<instance id of ${nodeName}>`;
}

/**
 * The machine whose instance id a step's delete action must find before it acts: the subject of the
 * join (leave.sh, on the machine itself) or of the membership or removal (member-remove.sh, on a
 * control plane). Undefined for steps with nothing to undo.
 */
export function deleteGuardMachine(step: Step): string | undefined {
  return DELETE_SCRIPTS[step.kind] ? step.subject : undefined;
}

/**
 * The machine a step is `deletedWith`: the steps that run on their own machine and are re-run when it
 * is replaced (prepare, join, ready, backup, haproxy, init, upgrade on the node itself): their undo
 * is moot once the VM is deleted, so the engine skips their provider Delete (no SSH dial to a VM
 * being deleted) when it deletes the VM in the same update (scale-down, destroy). The engine checks
 * only deletions (step.go, DeleteStep.Apply: isDeletedWith(old.DeletedWith, otherDeletions), filled
 * by GenerateDeletes), not replacements: a VM replaced with `pulumi up --replace` is in the step
 * generator's replace set only, so its steps' deletes still run (pulumi/pulumi#19924). Never the
 * steps hosted on a machine for another one (a membership's etcd removal, a worker's removal, the
 * join credentials): they must run while their host stays.
 */
export function deletedWithMachine(step: Step): string | undefined {
  if (runsOnDeployer(step) || step.node !== step.subject) return undefined;
  return step.rerunWhenReplaced.includes(step.node) ? step.node : undefined;
}

/**
 * The machine whose instance id a step's create command names: a control plane's join credentials,
 * which remove a lost machine's etcd member only when another instance is about to join.
 */
export function createInstanceIdMachine(plan: Plan, step: Step): string | undefined {
  if (step.kind !== "credentials") return undefined;
  return plan.nodes.find((n) => n.name === step.subject)?.role === "control-plane" ? step.subject : undefined;
}

/** What is known about a step before any deploy-time value exists. */
export function stepTraits(step: Step): { secret: boolean; deleteScript?: string; deleteOnly: boolean } {
  return {
    secret: SECRET_KINDS.has(step.kind),
    deleteScript: DELETE_SCRIPTS[step.kind],
    deleteOnly: DELETE_ONLY_KINDS.has(step.kind),
  };
}

/**
 * How SSH reaches a machine: a lone HAProxy VM is the jump host itself (its external address);
 * every other machine is reached at its internal address through the jump host (with two HAProxy
 * VMs, the external load balancer hands SSH to any healthy one, which jumps to the target).
 */
export function sshRoute(plan: Plan, nodeName: string): { direct: boolean; internalIp: string } {
  const node = plan.nodes.find((n) => n.name === nodeName);
  if (!node) throw new Error(`unknown node ${nodeName}`);
  return { direct: node.role === "loadbalancer" && plan.loadBalancing.mode === "vm", internalIp: node.internalIp };
}

/**
 * The delete command of a step: a self-contained bundle in a heredoc, staged in a temporary
 * directory, so it depends on nothing its create step left on the machine. Bounded and best effort:
 * a failure is reported and the teardown goes on, unless the script refuses (DELETE_REFUSED_EXIT).
 */
function renderDeleteCommand(
  plan: Plan,
  step: Step,
  script: string,
  sources: Readonly<Record<string, string>>,
  instanceId: string,
): string {
  const subject = plan.nodes.find((n) => n.name === step.subject);
  if (!subject) throw new Error(`step ${step.id} deletes something for unknown node ${step.subject}`);
  // The machine this step was created for: the delete acts only on it (INSTANCE_ID_ANNOTATION).
  const env: Record<string, string> =
    script === "member-remove.sh"
      ? {
          MEMBER_NODE: subject.name,
          MEMBER_ROLE: subject.role,
          MEMBER_IP: subject.internalIp,
          KUBECONFIG_PATH: ADMIN_KUBECONFIG,
          EXPECTED_INSTANCE_ID: instanceId,
          DELETE_BUDGET_SECONDS: String(DELETE_TIMEOUT_SECONDS),
          DELETE_REFUSED_EXIT: String(DELETE_REFUSED_EXIT),
        }
      : { NODE_NAME: subject.name, EXPECTED_INSTANCE_ID: instanceId };
  const bundle = renderBundle({ stepId: step.id, script, env, stage: "temporary" }, sources);
  if (bundle.split("\n").includes(DELETE_HEREDOC)) throw new Error(`${script} contains the line ${DELETE_HEREDOC}`);
  // Exit 75 (DELETE_REFUSED_EXIT) is a refusal to go on (etcd would lose its quorum): it fails the
  // delete, so Pulumi keeps the machine. Any other failure is reported and the teardown goes on.
  return (
    `sudo timeout ${DELETE_TIMEOUT_SECONDS} bash -s <<'${DELETE_HEREDOC}' || { rc=$?; ` +
    `[ "$rc" -ne ${DELETE_REFUSED_EXIT} ] || exit ${DELETE_REFUSED_EXIT}; ` +
    `echo "ha-k8s: ${script} for ${step.id} did not complete; continuing teardown" >&2; }\n${bundle}${DELETE_HEREDOC}\n`
  );
}

/**
 * The command Pulumi stores to run when it deletes the step. Its one deploy-time value is the instance
 * id of the machine it undoes (deleteGuardMachine), from `instanceIdOf`; without it (the offline
 * render) a placeholder, which matches no machine that recorded its id.
 */
export function renderStepDeleteCommand(
  plan: Plan,
  step: Step,
  sources: Readonly<Record<string, string>>,
  instanceIdOf: (nodeName: string) => string = instanceIdPlaceholder,
): string | undefined {
  const script = DELETE_SCRIPTS[step.kind];
  return script ? renderDeleteCommand(plan, step, script, sources, instanceIdOf(step.subject)) : undefined;
}

interface StepSpec {
  script: string;
  env: Record<string, string>;
  files: StepFile[];
  /** Scripts the step installs on the machine, staged with it. */
  extraScripts?: string[];
}

/**
 * The keys every control plane shares, staged for kubeadm-init.sh, which installs each under
 * /etc/kubernetes/pki at the path its name gives ("etcd-ca.crt" is etcd/ca.crt).
 */
function sharedKeyFiles(values: DeployValues): StepFile[] {
  const keys = values.controlPlaneKeys;
  const pairs: [string, string, boolean][] = [
    ["ca.crt", values.caCertPem, false],
    ["ca.key", values.caKeyPem, true],
    ["etcd-ca.crt", keys.etcdCaCertPem, false],
    ["etcd-ca.key", keys.etcdCaKeyPem, true],
    ["front-proxy-ca.crt", keys.frontProxyCaCertPem, false],
    ["front-proxy-ca.key", keys.frontProxyCaKeyPem, true],
    ["sa.key", keys.serviceAccountKeyPem, true],
    ["sa.pub", keys.serviceAccountPublicKeyPem, false],
  ];
  return pairs.map(([name, content, secret]) => ({
    name,
    content,
    mode: secret ? 0o600 : 0o644,
    kind: "other" as const,
    ...(secret ? { secret: true } : {}),
  }));
}

/** The repository keys the configuration pins, for the steps that add the package repositories. */
function packageKeyFiles(config: ClusterConfig): StepFile[] {
  const keys: [string, string | undefined][] = [
    [PACKAGE_KEY_FILES.kubernetes, config.kubernetesPackageKey],
    [PACKAGE_KEY_FILES.crio, config.crioPackageKey],
  ];
  return keys.flatMap(([name, content]) =>
    content === undefined ? [] : [{ name, content, mode: 0o644, kind: "other" as const }],
  );
}

function specFor(
  config: ClusterConfig,
  plan: Plan,
  step: Step,
  deployValues: DeployValues | undefined,
  instanceIdOf: (nodeName: string) => string,
): StepSpec {
  // Only secret steps receive deploy-time values, so a step that is logged can never carry one.
  const values = (): DeployValues => {
    if (!deployValues || !SECRET_KINDS.has(step.kind)) {
      throw new Error(`step ${step.id} (${step.kind}) must not depend on deploy-time secrets`);
    }
    return deployValues;
  };
  const node = (name: string): PlannedNode => {
    const found = plan.nodes.find((n) => n.name === name);
    if (!found) throw new Error(`step ${step.id} names unknown node ${name}`);
    return found;
  };
  const apiEndpoint = `${plan.endpoint.internalIp}:${plan.endpoint.port}`;
  const subject = step.subject === "cluster" || step.subject === "workers" ? undefined : node(step.subject);
  switch (step.kind) {
    case "login": {
      const route = sshRoute(plan, subject!.name);
      return {
        script: "wait-for-login.sh",
        env: {
          NODE_NAME: subject!.name,
          TARGET_HOST: route.direct ? values().externalIp : route.internalIp,
          JUMP_HOST: route.direct ? "" : values().externalIp,
          SSH_USER,
          LOGIN_TIMEOUT_SECONDS: String(LOGIN_TIMEOUT_SECONDS),
        },
        files: [{ name: "ssh-key", content: values().sshPrivateKey, mode: 0o600, kind: "other", secret: true }],
      };
    }
    case "haproxy":
      return {
        script: "haproxy.sh",
        env: {},
        files: [{ name: "haproxy.cfg", content: renderHaproxyForPlan(plan), mode: 0o644, kind: "haproxy-config" }],
      };
    case "prepare":
      // Nothing here names the version the cluster runs now (prepare-node.sh asks the cluster), so
      // changing kubernetesVersion does not re-run this step on existing machines.
      return {
        script: "prepare-node.sh",
        env: {
          NODE_ROLE: subject!.role,
          K8S_RELEASES: releaseTable(config),
          K8S_DEFAULT_MINOR: minorOfVersion(plan.cluster.createdWithVersion),
          API_ENDPOINT: apiEndpoint,
          REGISTRIES_DROP_IN: REGISTRIES_DROP_IN_PATH,
          // The control planes' image pre-pull: kubeadm's --image-repository (unset: its default).
          ...(config.imageRepository ? { IMAGE_REPOSITORY: config.imageRepository } : {}),
        },
        files: [
          ...Object.keys(SUPPORTED_KUBERNETES).map((minor) => ({
            name: `crio-${minor}.conf`,
            content: renderCrioDropIn(minor, config.imageRepository),
            mode: 0o644,
            kind: "other" as const,
          })),
          ...packageKeyFiles(config),
          ...(config.registryMirror
            ? [
                {
                  name: "registries-mirror.conf",
                  content: renderRegistriesDropIn(config.registryMirror),
                  mode: 0o644,
                  kind: "registries-config" as const,
                },
              ]
            : []),
        ],
      };
    case "init":
      // Everything a first init needs, and everything a rebuilt first control plane needs to join
      // the cluster the others kept (kubeadm-init.sh): the shared keys, the token and a
      // JoinConfiguration that expects the keys on disk.
      return {
        script: "kubeadm-init.sh",
        env: {
          NODE_NAME: subject!.name,
          NODE_IP: subject!.internalIp,
          NODE_ROLE: subject!.role,
          API_ENDPOINT: apiEndpoint,
          // cp-2 and cp-3: scaling never removes them (the highest index goes first), so the bundle
          // does not change with controlPlaneCount (a change would run this step again); the rejoin
          // asks the API for the others.
          OTHER_CONTROL_PLANE_IPS: plan.nodes
            .filter((n) => n.role === "control-plane" && n.name !== subject!.name)
            .slice(0, 2)
            .map((n) => n.internalIp)
            .join(" "),
          TOKEN_TTL_HOURS: String(JOIN_CREDENTIALS_TTL_HOURS),
        },
        files: [
          {
            name: "kubeadm-init.yaml",
            content: renderInitConfiguration(config, plan, subject!, values(), values()),
            mode: 0o600,
            kind: "kubeadm-config",
            secret: true,
          },
          {
            name: "kubeadm-join.yaml",
            content: renderJoinConfiguration(plan, subject!, values(), { keysOnDisk: true }),
            mode: 0o600,
            kind: "kubeadm-config",
            secret: true,
          },
          { name: "bootstrap-token", content: values().bootstrapToken, mode: 0o600, kind: "other", secret: true },
          ...sharedKeyFiles(values()),
        ],
        extraScripts: ["join.sh"],
      };
    case "cni":
      return {
        script: "install-cni.sh",
        env: {
          NODE_NAME: subject!.name,
          CALICO_MANIFEST_URLS: calicoManifestUrls(config.calicoManifestMirror).join(" "),
          KUBECONFIG_PATH: ADMIN_KUBECONFIG,
        },
        files: [
          { name: "calico-resources.yaml", content: renderCalicoResources(config), mode: 0o644, kind: "manifest" },
        ],
      };
    case "credentials": {
      const files: StepFile[] = [
        { name: "bootstrap-token", content: values().bootstrapToken, mode: 0o600, kind: "other", secret: true },
      ];
      if (subject?.role === "control-plane") {
        // upload-certs takes the certificate key from a config file: no secret on a command line.
        const host = node(step.node);
        files.push({
          name: "kubeadm-upload-certs.yaml",
          content: renderInitConfiguration(config, plan, host, values(), values()),
          mode: 0o600,
          kind: "kubeadm-config",
          secret: true,
        });
      }
      return {
        script: "refresh-credentials.sh",
        env: {
          JOIN_NODE: subject ? subject.name : "the workers",
          JOIN_ROLE: subject ? subject.role : "worker",
          KUBECONFIG_PATH: ADMIN_KUBECONFIG,
          TOKEN_TTL_HOURS: String(JOIN_CREDENTIALS_TTL_HOURS),
          // A lost control plane's etcd member is removed before its rebuilt machine joins, never
          // the member of the machine about to join (refresh-credentials.sh remove_lost_member).
          ...(subject?.role === "control-plane"
            ? { JOIN_IP: subject.internalIp, JOIN_INSTANCE_ID: instanceIdOf(subject.name) }
            : {}),
        },
        files,
      };
    }
    case "join":
      return {
        script: "join.sh",
        env: { NODE_NAME: subject!.name, NODE_ROLE: subject!.role, API_ENDPOINT: apiEndpoint },
        files: [
          {
            name: "kubeadm-join.yaml",
            content: renderJoinConfiguration(plan, subject!, values()),
            mode: 0o600,
            kind: "kubeadm-config",
            secret: true,
          },
        ],
      };
    case "member":
    case "ready":
      return {
        script: "member.sh",
        env: {
          MEMBER_NODE: subject!.name,
          MEMBER_ROLE: subject!.role,
          MEMBER_IP: subject!.internalIp,
          // A worker checks its own Node on itself, with its kubelet's credentials.
          KUBECONFIG_PATH: step.kind === "ready" ? KUBELET_KUBECONFIG : ADMIN_KUBECONFIG,
        },
        files: [],
      };
    case "verify":
      return { script: "verify.sh", env: verifyEnv(plan), files: [] };
    case "kubeconfig":
      return {
        script: "kubeconfig.sh",
        env: { SEALED_OUTPUT_PREFIX, SEALED_OUTPUT_ITERATIONS: String(SEALED_OUTPUT_ITERATIONS) },
        files: [{ name: "output-key", content: values().outputKey, mode: 0o600, kind: "other", secret: true }],
      };
    case "backup":
    case "snapshot":
      return backupSpec(config, plan, step, node(step.node));
    case "upgrade":
    case "upgrade-drain":
    case "upgrade-uncordon":
    case "upgrade-verify":
      return upgradeSpec(config, plan, step, subject);
    case "removal":
      throw new Error(`step ${step.id} only acts when deleted; it has no create command`);
    case "vm":
    case "network":
    case "load-balancer":
    case "backup-bucket":
      throw new Error(`step ${step.id} creates GCP resources; it has no command`);
  }
}

/** What verify.sh checks the cluster against: every node, every etcd member, the endpoint. */
function verifyEnv(plan: Plan): Record<string, string> {
  return {
    EXPECTED_NODES: plan.nodes
      .filter((n) => n.role !== "loadbalancer")
      .map((n) => n.name)
      .join(" "),
    EXPECTED_ETCD_PEERS: plan.nodes
      .filter((n) => n.role === "control-plane")
      .map((n) => n.internalIp)
      .join(" "),
    API_ENDPOINT: `${plan.endpoint.internalIp}:${plan.endpoint.port}`,
    KUBECONFIG_PATH: ADMIN_KUBECONFIG,
  };
}

/** The steps of a Kubernetes upgrade (render/upgrade.ts): everything about the target release. */
function upgradeSpec(config: ClusterConfig, plan: Plan, step: Step, subject: PlannedNode | undefined): StepSpec {
  const upgrade = plan.upgrade;
  if (!upgrade) throw new Error(`step ${step.id} belongs to an upgrade, but the plan has none`);
  const release = kubernetesRelease(config.kubernetesVersion);
  const target = { K8S_VERSION: `v${upgrade.to}`, KUBECONFIG_PATH: ADMIN_KUBECONFIG };
  const drain = { DRAIN_TIMEOUT_SECONDS: String(upgrade.drainTimeoutSeconds) };
  switch (step.kind) {
    case "upgrade": {
      const first = plan.nodes.find((n) => n.role === "control-plane")!;
      return {
        script: "upgrade-node.sh",
        env: {
          NODE_NAME: subject!.name,
          NODE_ROLE: subject!.role,
          UPGRADE_ACTION: subject!.name === first.name ? "apply" : "node",
          K8S_MINOR: config.kubernetesVersion,
          K8S_DEB_VERSION: release.debVersion,
          KUBERNETES_APT_REPO: kubernetesAptRepo(config.kubernetesVersion, config),
          CRIO_APT_REPO: crioAptRepo(config.kubernetesVersion, config),
          ...target,
          ...drain,
        },
        files: [
          {
            name: "crio.conf",
            content: renderCrioDropIn(config.kubernetesVersion, config.imageRepository),
            mode: 0o644,
            kind: "other",
          },
          ...packageKeyFiles(config),
        ],
      };
    }
    case "upgrade-drain":
      return { script: "upgrade-drain.sh", env: { NODE_NAME: subject!.name, ...target, ...drain }, files: [] };
    case "upgrade-uncordon":
      return { script: "upgrade-uncordon.sh", env: { NODE_NAME: subject!.name, ...target }, files: [] };
    default:
      // The cluster's verification, plus every kubelet and API server at the new version, and
      // kubeadm's addons (CoreDNS, kube-proxy) at the versions kubeadm deploys for it.
      return {
        script: "verify.sh",
        env: { ...verifyEnv(plan), K8S_VERSION: target.K8S_VERSION, ...upgradeAddonVersions(upgrade.to) },
        files: [],
      };
  }
}

/**
 * backup: install etcdutl, etcd-backup.sh and its systemd service + timer on a control plane.
 * snapshot: run etcd-backup.sh once, now, whichever member this is (before risky changes). Its
 * inputs carry the control-plane count and Kubernetes version, so a change of either changes the
 * step and runs it again.
 */
function backupSpec(config: ClusterConfig, plan: Plan, step: Step, host: PlannedNode): StepSpec {
  const backup = {
    bucket: plan.backup.bucket,
    clusterName: config.clusterName,
    nodeName: host.name,
    etcdVersion: plan.backup.etcdVersion,
  };
  if (step.kind === "snapshot") {
    return {
      script: "etcd-backup.sh",
      env: {
        ...backupVariables({ ...backup, reason: "pre-change" }),
        CONTROL_PLANE_COUNT: String(config.controlPlaneCount),
        KUBERNETES_VERSION: plan.cluster.kubernetesPatch,
      },
      files: [],
    };
  }
  return {
    script: "backup-install.sh",
    env: {
      ETCD_VERSION: plan.backup.etcdVersion,
      ETCD_RELEASE_URL: etcdReleaseUrl(plan.backup.etcdVersion, config.etcdReleaseMirror),
      BACKUP_UNIT,
    },
    files: [
      { name: `${BACKUP_UNIT}.service`, content: renderBackupService(), mode: 0o644, kind: "systemd-unit" },
      {
        name: `${BACKUP_UNIT}.timer`,
        content: renderBackupTimer(plan.backup.schedule),
        mode: 0o644,
        kind: "systemd-unit",
      },
      {
        name: "etcd-backup.env",
        content: renderBackupEnvFile({ ...backup, reason: "scheduled" }),
        mode: 0o600,
        kind: "other",
      },
    ],
    extraScripts: ["etcd-backup.sh"],
  };
}

export function renderStepCommand(
  config: ClusterConfig,
  plan: Plan,
  step: Step,
  /** Deploy-time values; required by secret steps, refused by the others (see stepTraits). */
  values: DeployValues | undefined,
  scriptSources: Readonly<Record<string, string>>,
  /**
   * The machines' instance ids (placeholders without): for the delete command
   * (renderStepDeleteCommand) and for the steps whose create names one (createInstanceIdMachine).
   */
  instanceIdOf?: (nodeName: string) => string,
): StepCommand {
  const traits = stepTraits(step);
  const deleteCommand = renderStepDeleteCommand(plan, step, scriptSources, instanceIdOf);
  if (traits.deleteOnly) return { step, files: [], deleteCommand, secret: traits.secret };
  const spec = specFor(config, plan, step, values, instanceIdOf ?? instanceIdPlaceholder);
  const bundle = renderBundle(
    {
      stepId: step.id,
      script: spec.script,
      env: spec.env,
      files: spec.files,
      extraScripts: spec.extraScripts,
      // Enforced on the machine (customTimeouts never stop a remote command); login checks run
      // where `pulumi up` runs and bound themselves (LOGIN_TIMEOUT_SECONDS).
      budgetSeconds: runsOnDeployer(step) ? undefined : stepBudgetSeconds(plan, step),
      // Login checks run on the deploying machine: nothing of them stays there.
      stage: runsOnDeployer(step) ? "temporary" : "machine",
    },
    scriptSources,
  );
  return { step, bundle, files: spec.files, deleteCommand, secret: traits.secret };
}
