// A lab cluster: the lab (machines, network, mirror) plus the stack deployed on it by the engine, as
// `pulumi up` would deploy it. Used by the tier's tests and by `npm run lab`.

import * as fs from "fs";
import * as path from "path";
import { ClusterConfig } from "../../../render/config";
import { publicKubeconfig } from "../../../render/kubeconfig";
import { renderBundle } from "../../../render/bundle";
import { API_PORT, DeployedState, Step } from "../../../render/plan";
import { ADMIN_KUBECONFIG } from "../../../render/steps";
import { deployParallelism } from "../../../render/parallelism";
import { DeployResult, Engine, EngineState } from "./engine";
import { LAB_BUCKET, Lab, MIRROR_IP } from "./lab";
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

  /** The stack with other configuration (what `pulumi config set` and the next `up` would do). */
  reconfigure(overrides: Record<string, unknown>, deployed: DeployedState = {}): void {
    this.stack = labStack(labStackConfig(this.repoKey, { ...this.options.overrides, ...overrides }), deployed);
  }

  /** One `pulumi up` of the current stack configuration. */
  async up(options: { parallel?: number; stepTimeoutMs?: number } = {}): Promise<DeployResult> {
    const result = await this.engine.deploy(
      {
        config: this.stack.config,
        plan: this.stack.plan,
        values: this.secrets.values,
        sources: this.stack.sources,
        bucket: LAB_BUCKET,
        parallel: options.parallel ?? deployParallelism(this.stack.plan),
        stepTimeoutMs: options.stepTimeoutMs,
        standIns: { cni: (step) => this.cniStandIn(step) },
        log: this.options.log,
      },
      this.state,
    );
    this.state = result.state;
    this.history.push(result);
    return result;
  }

  /** The cni step's bundle in the tier: the bridge-and-routes stand-in (cni-standin.sh) for Calico. */
  private cniStandIn(step: Step): string {
    const script = "cni-standin.sh";
    const tag = fs.readFileSync(path.join(this.options.artifacts, "lab-image-tag"), "utf8").trim();
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

  /** The stack's kubeconfig output (admin.conf at the external address), as `pulumi stack output`. */
  kubeconfig(): string {
    const step = this.stack.plan.steps.find((s) => s.kind === "kubeconfig");
    const stdout = step ? this.state.resources[step.id]?.stdout : undefined;
    if (!stdout) throw new Error("no kubeconfig yet: the kubeconfig step has not run");
    return publicKubeconfig(stdout, this.secrets.values.externalIp, API_PORT);
  }

  get mirror(): string {
    return MIRROR_IP;
  }

  async stop(): Promise<void> {
    await this.lab.stop();
  }
}
