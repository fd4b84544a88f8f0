// Turns each bootstrap step of the plan into what runs on a machine: the bundle piped to
// `sudo bash -s`, the command `pulumi destroy` runs, and the files the offline render shows. The
// Pulumi bootstrap component and cli/render.ts both call renderStepCommand, so the render is
// exactly what `pulumi up` sends (deploy-time secrets and the external IP aside). Pure.

import { BACKUP_UNIT, backupVariables, renderBackupEnvFile, renderBackupService, renderBackupTimer } from "./backup";
import { ON_DELETE, StagedFile, renderBundle, stageDir } from "./bundle";
import { calicoManifestUrls, renderCalicoResources } from "./calico";
import { ClusterConfig } from "./config";
import { renderCrioDropIn } from "./crio";
import { renderHaproxyForPlan } from "./haproxy";
import { EndpointAddresses, JoinSecrets, renderInitConfiguration, renderJoinConfiguration } from "./kubeadm";
import { Plan, PlannedNode, Step, StepKind } from "./plan";
import { crioAptRepo, etcdReleaseUrl, kubernetesAptRepo, kubernetesRelease } from "./versions";

/** Everything decided at deploy time: join secrets, the cluster CA and the external address. */
export interface DeployValues extends JoinSecrets, EndpointAddresses {
  readonly caCertPem: string;
  readonly caKeyPem: string;
}

export type StagedFileKind = "kubeadm-config" | "haproxy-config" | "manifest" | "systemd-unit" | "other";

export interface StepFile extends StagedFile {
  readonly kind: StagedFileKind;
}

export interface StepCommand {
  readonly step: Step;
  /** Piped to `sudo bash -s` on the step's machine. */
  readonly bundle: string;
  /** Files the bundle stages, for the offline render and the artifact checks. */
  readonly files: readonly StepFile[];
  /** Runs when Pulumi deletes the step (best effort, bounded); undefined when nothing is to undo. */
  readonly deleteCommand?: string;
  /** True when the bundle (and so possibly the output) carries secrets. */
  readonly secret: boolean;
}

/** The remote `create`/`update` command of every step: the bundle arrives on stdin. */
export const RUN_BUNDLE_COMMAND = "sudo bash -s";
/** Upper bound on a delete-time action, so `pulumi destroy` never waits on a broken cluster. */
export const DELETE_TIMEOUT_SECONDS = 300;
export const ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf";

function deleteCommand(stepId: string, script: string): string {
  return (
    `sudo timeout ${DELETE_TIMEOUT_SECONDS} bash ${stageDir(stepId)}/${ON_DELETE} ` +
    `|| echo "ha-k8s: ${script} for ${stepId} did not complete; continuing teardown" >&2`
  );
}

/** Steps whose bundle carries secrets (token, certificate key, CA key) or whose output does (kubeconfig). */
const SECRET_KINDS: ReadonlySet<StepKind> = new Set<StepKind>(["init", "credentials", "join", "kubeconfig"]);
/** What each kind undoes when Pulumi deletes it; staged by the create bundle. */
const DELETE_SCRIPTS: Partial<Record<StepKind, string>> = { join: "leave.sh", member: "member-remove.sh" };

/** What is known about a step before any deploy-time value exists. */
export function stepTraits(step: Step): { secret: boolean; deleteCommand?: string } {
  const script = DELETE_SCRIPTS[step.kind];
  return { secret: SECRET_KINDS.has(step.kind), deleteCommand: script ? deleteCommand(step.id, script) : undefined };
}

interface StepSpec {
  script: string;
  env: Record<string, string>;
  files: StepFile[];
  /** Scripts the step installs on the machine, staged with it. */
  extraScripts?: string[];
}

function specFor(config: ClusterConfig, plan: Plan, step: Step, deployValues: DeployValues | undefined): StepSpec {
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
  const release = kubernetesRelease(config.kubernetesVersion);
  const apiEndpoint = `${plan.endpoint.internalIp}:${plan.endpoint.port}`;
  const subject = step.subject === "cluster" || step.subject === "workers" ? undefined : node(step.subject);
  switch (step.kind) {
    case "haproxy":
      return {
        script: "haproxy.sh",
        env: {},
        files: [{ name: "haproxy.cfg", content: renderHaproxyForPlan(plan), mode: 0o644, kind: "haproxy-config" }],
      };
    case "prepare":
      return {
        script: "prepare-node.sh",
        env: {
          NODE_ROLE: subject!.role,
          K8S_MINOR: config.kubernetesVersion,
          K8S_VERSION: `v${release.patch}`,
          K8S_DEB_VERSION: release.debVersion,
          KUBERNETES_APT_REPO: kubernetesAptRepo(config.kubernetesVersion),
          CRIO_APT_REPO: crioAptRepo(config.kubernetesVersion),
        },
        files: [{ name: "crio.conf", content: renderCrioDropIn(config.kubernetesVersion), mode: 0o644, kind: "other" }],
      };
    case "init":
      return {
        script: "kubeadm-init.sh",
        env: { NODE_NAME: subject!.name, API_ENDPOINT: apiEndpoint },
        files: [
          {
            name: "kubeadm-init.yaml",
            content: renderInitConfiguration(config, plan, subject!, values(), values()),
            mode: 0o600,
            kind: "kubeadm-config",
            secret: true,
          },
          { name: "ca.crt", content: values().caCertPem, mode: 0o644, kind: "other" },
          { name: "ca.key", content: values().caKeyPem, mode: 0o600, kind: "other", secret: true },
        ],
      };
    case "cni":
      return {
        script: "install-cni.sh",
        env: {
          NODE_NAME: subject!.name,
          CALICO_MANIFEST_URLS: calicoManifestUrls().join(" "),
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
      return {
        script: "member.sh",
        env: {
          MEMBER_NODE: subject!.name,
          MEMBER_ROLE: subject!.role,
          MEMBER_IP: subject!.internalIp,
          KUBECONFIG_PATH: ADMIN_KUBECONFIG,
        },
        files: [],
      };
    case "verify":
      return {
        script: "verify.sh",
        env: {
          EXPECTED_NODES: plan.nodes
            .filter((n) => n.role !== "loadbalancer")
            .map((n) => n.name)
            .join(" "),
          EXPECTED_ETCD_PEERS: plan.nodes
            .filter((n) => n.role === "control-plane")
            .map((n) => n.internalIp)
            .join(" "),
          API_ENDPOINT: apiEndpoint,
          KUBECONFIG_PATH: ADMIN_KUBECONFIG,
        },
        files: [],
      };
    case "kubeconfig":
      return { script: "kubeconfig.sh", env: {}, files: [] };
    case "backup":
    case "snapshot":
      return backupSpec(config, plan, step, node(step.node));
    case "vm":
    case "network":
    case "load-balancer":
    case "backup-bucket":
      throw new Error(`step ${step.id} creates GCP resources; it has no command`);
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
      ETCD_RELEASE_URL: etcdReleaseUrl(plan.backup.etcdVersion),
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
): StepCommand {
  const spec = specFor(config, plan, step, values);
  const deleteScript = DELETE_SCRIPTS[step.kind];
  const bundle = renderBundle(
    {
      stepId: step.id,
      script: spec.script,
      deleteScript,
      env: spec.env,
      files: spec.files,
      extraScripts: spec.extraScripts,
    },
    scriptSources,
  );
  return { step, bundle, files: spec.files, ...stepTraits(step) };
}
