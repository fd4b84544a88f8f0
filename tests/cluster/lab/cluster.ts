// A lab cluster: the lab (machines, network, mirror) plus the stack deployed on it by the engine, as
// `pulumi up` would deploy it. Used by the tier's tests and by `npm run lab`.

import * as fs from "fs";
import * as path from "path";
import { PreviousOutputs, changeProblems, formatRefusal, immutableSettingsOf } from "../../../render/changes";
import { ClusterConfig, RawConfig } from "../../../render/config";
import { publicKubeconfig } from "../../../render/kubeconfig";
import { openSealedOutput } from "../../../render/secrets";
import { renderBundle } from "../../../render/bundle";
import { API_PORT, Step } from "../../../render/plan";
import { ADMIN_KUBECONFIG } from "../../../render/steps";
import { deployParallelism } from "../../../render/parallelism";
import { DeployInputs, DeployResult, Engine, EngineState } from "./engine";
import { KEPT_MARKER, LAB_BUCKET, Lab, MIRROR_IP, STORAGE_IP, leftovers } from "./lab";
import { LabSecrets, LabStack, labStack, labStackConfig, makeSecrets } from "./stack";

export interface LabClusterOptions {
  readonly artifacts: string;
  /** Changes to the lab's stack configuration (e.g. kubernetesVersion, imageRepository). */
  readonly overrides?: Record<string, unknown>;
  readonly log?: (line: string) => void;
}

export class LabCluster {
  state: EngineState = { resources: {} };
  stack: LabStack;
  /**
   * The stack's outputs that the next deployment reads back (index.ts): set by a deployment that
   * succeeded; a failed one keeps the previous (pulumi/pulumi#15754).
   */
  outputs: PreviousOutputs = {};
  /** The configuration changes made so far (`pulumi config set`), over the lab's stack. */
  private overrides: RawConfig;
  readonly engine: Engine;
  /** Each deploy's result, in order. */
  readonly history: DeployResult[] = [];

  private constructor(
    readonly lab: Lab,
    readonly secrets: LabSecrets,
    config: ClusterConfig,
    readonly repoKey: string,
    readonly options: LabClusterOptions,
  ) {
    this.stack = labStack(config);
    this.overrides = { ...(options.overrides ?? {}) };
    this.engine = new Engine(lab, path.join(lab.dir, "deployer"));
  }

  static async create(options: LabClusterOptions): Promise<LabCluster> {
    const repoKey = fs.readFileSync(path.join(options.artifacts, "repo-key.asc"), "utf8");
    const config = labStackConfig(repoKey, options.overrides ?? {});
    const secretsDir = fs.mkdtempSync("/tmp/ha-k8s-lab-secrets-");
    const secrets = await makeSecrets(secretsDir, config.clusterName);
    const plan = labStack(config).plan;
    const lb = plan.nodes.find((n) => n.role === "loadbalancer")!;
    const lab = await Lab.start({
      artifacts: options.artifacts,
      subnetCidr: config.subnetCidr,
      sshPublicKey: secrets.sshPublicKey,
      externalIp: secrets.values.externalIp,
      natTo: lb.internalIp,
      log: options.log,
    });
    fs.renameSync(secretsDir, path.join(lab.dir, "secrets"));
    return new LabCluster(lab, secrets, config, repoKey, options);
  }

  /**
   * `pulumi config set` of these keys: the next `up` deploys the stack with them, planned against
   * what the last deployment left (an upgrade when the version moved), and refused as preview
   * refuses it (render/changes.ts changeProblems, what components/guard.ts applies).
   */
  reconfigure(changes: RawConfig): void {
    const overrides = { ...this.overrides, ...changes };
    const config = labStackConfig(this.repoKey, overrides);
    const problems = changeProblems(this.outputs, config);
    if (problems.length > 0) throw new Error(formatRefusal(problems));
    this.overrides = overrides;
    this.stack = labStack(config, {
      kubernetesVersion: this.outputs.kubernetesVersion,
      createdWithVersion: this.outputs.createdWithKubernetes,
    });
  }

  /** One `pulumi up` of the current stack configuration. */
  async up(
    options: Pick<DeployInputs, "rerunAll" | "onStart" | "beforeDestroy"> & {
      parallel?: number;
      stepTimeoutMs?: number;
    } = {},
  ): Promise<DeployResult> {
    const result = await this.engine.deploy(
      {
        config: this.stack.config,
        plan: this.stack.plan,
        values: this.secrets.values,
        sources: this.stack.sources,
        bucket: LAB_BUCKET,
        parallel: options.parallel ?? deployParallelism(this.stack.plan),
        stepTimeoutMs: options.stepTimeoutMs,
        rerunAll: options.rerunAll,
        onStart: options.onStart,
        beforeDestroy: options.beforeDestroy,
        standIns: { cni: (step) => this.cniStandIn(step) },
        log: this.options.log,
      },
      this.state,
    );
    this.state = result.state;
    this.history.push(result);
    if (result.ok) {
      const { config, plan } = this.stack;
      this.outputs = {
        controlPlaneCount: config.controlPlaneCount,
        immutableSettings: immutableSettingsOf(config),
        kubernetesVersion: plan.cluster.kubernetesPatch,
        createdWithKubernetes: plan.cluster.createdWithVersion,
        workerCount: config.workerCount,
      };
    }
    return result;
  }

  /** The tag of the lab's own image (the CNI stand-in's and the workload's), built with the artifacts. */
  get labImageTag(): string {
    return fs.readFileSync(path.join(this.options.artifacts, "lab-image-tag"), "utf8").trim();
  }

  /** The cni step's bundle in the tier: the bridge-and-routes stand-in (cni-standin.sh) for Calico. */
  private cniStandIn(step: Step): string {
    const script = "cni-standin.sh";
    const tag = this.labImageTag;
    return renderBundle(
      {
        stepId: step.id,
        script,
        env: {
          NODE_NAME: step.node,
          KUBECONFIG_PATH: ADMIN_KUBECONFIG,
          // docker.io, pulled through the registry mirror like any workload's image.
          CNI_IMAGE: `docker.io/hak8slab/labtool:${tag}`,
          API_HOST: this.stack.plan.endpoint.internalIp,
          API_PORT: String(this.stack.plan.endpoint.port),
        },
      },
      { ...this.stack.sources, [script]: fs.readFileSync(path.join(__dirname, script), "utf8") },
    );
  }

  /**
   * The stack outputs `pulumi stack output --json --show-secrets` would print (index.ts exports
   * them), for the tools that read a stack; written where the deployer's `pulumi` stand-in reads them.
   */
  writeStackOutputs(): string {
    const { config, plan } = this.stack;
    const file = path.join(this.lab.dir, "stack-outputs.json");
    const outputs = {
      clusterName: config.clusterName,
      controlPlaneCount: config.controlPlaneCount,
      kubernetesVersion: plan.cluster.kubernetesPatch,
      createdWithKubernetes: plan.cluster.createdWithVersion,
      controlPlaneEndpoint: `${plan.endpoint.internalIp}:${plan.endpoint.port}`,
      loadBalancerExternalIp: this.secrets.values.externalIp,
      nodes: plan.nodes.map((n) => ({ name: n.name, role: n.role, zone: n.zone, internalIp: n.internalIp })),
      kubeconfig: this.kubeconfig(),
      sshPrivateKey: this.secrets.values.sshPrivateKey,
      caCertHash: this.secrets.values.caCertHash,
      backupBucket: LAB_BUCKET,
    };
    fs.writeFileSync(file, JSON.stringify(outputs, null, 2), { mode: 0o600 });
    return file;
  }

  /**
   * The environment of a tool run where the deployer runs (`npm run restore-etcd`): the lab's
   * stand-ins for the Pulumi CLI and gcloud first on PATH, pointed at this stack and the lab's storage.
   * The deployer is an operator's machine, not a CI runner: CI and GITHUB_ACTIONS are dropped (with
   * them tools/pulumi-env.sh refuses a file backend without a passphrase, which made the restore
   * fail under CI only), and the stack's passphrase is set, as an operator with a file backend has
   * it, so that no .pulumi-passphrase is written into the checkout.
   */
  deployerEnv(): NodeJS.ProcessEnv {
    const env = { ...process.env };
    delete env.CI;
    delete env.GITHUB_ACTIONS;
    return {
      ...env,
      PULUMI_CONFIG_PASSPHRASE: "lab",
      PATH: `${path.join(__dirname, "deployer-bin")}:${path.dirname(process.execPath)}:${process.env.PATH ?? ""}`,
      HA_K8S_LAB_OUTPUTS: this.writeStackOutputs(),
      HA_K8S_LAB_TOKEN: this.lab.storageToken,
      HA_K8S_LAB_CA: this.lab.caCert,
      HA_K8S_LAB_STORAGE_IP: STORAGE_IP,
    };
  }

  /** The stack's kubeconfig output (admin.conf at the external address), as `pulumi stack output`. */
  kubeconfig(): string {
    const step = this.stack.plan.steps.find((s) => s.kind === "kubeconfig");
    const stdout = step ? this.state.resources[step.id]?.stdout : undefined;
    if (!stdout) throw new Error("no kubeconfig yet: the kubeconfig step has not run");
    return publicKubeconfig(
      openSealedOutput(stdout, this.secrets.values.outputKey),
      this.secrets.values.externalIp,
      API_PORT,
    );
  }

  get mirror(): string {
    return MIRROR_IP;
  }

  /** Leaves the lab running after this process ends, for `npm run lab -- down` to remove. */
  keep(): void {
    fs.writeFileSync(path.join(this.lab.dir, KEPT_MARKER), "");
  }

  async stop(): Promise<void> {
    await this.lab.stop();
  }

  /**
   * A suite's end: the lab left running with HA_K8S_LAB_KEEP=1 (npm run lab -- down removes it),
   * otherwise stopped. What of the tier is left on this host afterwards (nothing, when it worked).
   */
  async end(): Promise<string[]> {
    if (process.env.HA_K8S_LAB_KEEP === "1") {
      this.keep();
      return [];
    }
    await this.stop();
    return leftovers(this.lab.name);
  }
}
