// Runs the plan's bootstrap steps: one @pulumi/command command per step, depending on exactly the
// commands (or VMs) the plan says, so the order Pulumi follows is the order plan.json shows. Steps
// on machines pipe their rendered bundle (render/steps.ts) to `sudo bash -s` over SSH, through the
// load balancer as jump host (nodes have no external IP); login checks are local commands on the
// machine running `pulumi up`.

import * as command from "@pulumi/command";
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../render/config";
import { adminConfFromStepOutput, publicKubeconfig } from "../render/kubeconfig";
import { ControlPlaneKeys } from "../render/kubeadm";
import { API_PORT, Plan, Step, withBackupBucket } from "../render/plan";
import { readScriptSources } from "../render/scripts";
import { DIAL, stepResource } from "../render/step-resource";
import {
  createInstanceIdMachine,
  DeployValues,
  instanceIdPlaceholder,
  renderStepCommand,
  sshRoute,
} from "../render/steps";
import { SSH_USER } from "./vm";

export interface ClusterBootstrapArgs {
  readonly config: ClusterConfig;
  readonly plan: Plan;
  /** Every VM of the plan by node name. */
  readonly instances: ReadonlyMap<string, gcp.compute.Instance>;
  /** The network (firewall, NAT): commands wait for all of it. */
  readonly network: pulumi.Resource;
  /** The load balancer tier, the SSH path to every machine: commands wait for all of it. */
  readonly loadBalancer: pulumi.Resource;
  /** The snapshot bucket and its IAM grant (components/backup.ts), and the bucket's name. */
  readonly backup: pulumi.Resource;
  readonly backupBucket: pulumi.Input<string>;
  /** The jump host's (and the API's) public address. */
  readonly externalIp: pulumi.Input<string>;
  readonly sshPrivateKey: pulumi.Input<string>;
  readonly caCertPem: pulumi.Input<string>;
  readonly caKeyPem: pulumi.Input<string>;
  readonly caCertHash: pulumi.Input<string>;
  readonly bootstrapToken: pulumi.Input<string>;
  readonly certificateKey: pulumi.Input<string>;
  readonly controlPlaneKeys: pulumi.Input<ControlPlaneKeys>;
  /** Opens the kubeconfig step's sealed output (render/secrets.ts openSealedOutput). */
  readonly outputKey: pulumi.Input<string>;
}

/** A step on a machine (remote) or a login check where `pulumi up` runs (local). */
export type StepCommandResource = command.remote.Command | command.local.Command;

export class ClusterBootstrap extends pulumi.ComponentResource {
  /** Commands by step id. */
  readonly commands: ReadonlyMap<string, StepCommandResource>;
  /** admin.conf pointed at the load balancer's external address; secret. */
  readonly kubeconfig: pulumi.Output<string>;
  /** Resolves once the deployment's last verification (the upgrade's, when there is one) has passed. */
  readonly verified: pulumi.Output<string>;

  constructor(name: string, args: ClusterBootstrapArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ha-k8s:index:ClusterBootstrap", name, {}, opts);
    const { config, plan } = args;
    const sources = readScriptSources();
    const values: pulumi.Output<DeployValues> = pulumi.output({
      externalIp: args.externalIp,
      caCertPem: args.caCertPem,
      caKeyPem: args.caKeyPem,
      caCertHash: args.caCertHash,
      bootstrapToken: args.bootstrapToken,
      certificateKey: args.certificateKey,
      outputKey: args.outputKey,
      sshPrivateKey: args.sshPrivateKey,
      controlPlaneKeys: args.controlPlaneKeys,
    });

    const jumpHost = { host: args.externalIp, user: SSH_USER, privateKey: args.sshPrivateKey, ...DIAL };
    const connectionTo = (nodeName: string): command.types.input.remote.ConnectionArgs => {
      const route = sshRoute(plan, nodeName);
      return route.direct ? jumpHost : { ...jumpHost, host: route.internalIp, proxy: jumpHost };
    };
    const instanceOf = (nodeName: string): gcp.compute.Instance => {
      const instance = args.instances.get(nodeName);
      if (!instance) throw new Error(`no VM for node ${nodeName}`);
      return instance;
    };

    const resources = new Map<string, pulumi.Resource>();
    const commands = new Map<string, StepCommandResource>();
    for (const step of plan.steps) {
      if (step.kind === "network" || step.kind === "load-balancer") {
        resources.set(step.id, step.kind === "network" ? args.network : args.loadBalancer);
        continue;
      }
      if (step.kind === "vm") {
        resources.set(step.id, instanceOf(step.node));
        continue;
      }
      if (step.kind === "backup-bucket") {
        resources.set(step.id, args.backup);
        continue;
      }
      const cmd = this.stepCommand(step, config, plan, values, sources, connectionTo, instanceOf, resources, args);
      resources.set(step.id, cmd);
      commands.set(step.id, cmd);
    }
    this.commands = commands;

    const lastVerification =
      plan.steps.find((s) => s.kind === "upgrade-verify") ?? plan.steps.find((s) => s.kind === "verify");
    this.verified = lastVerification ? commands.get(lastVerification.id)!.stdout : pulumi.output("");
    const kubeconfigStep = plan.steps.find((s) => s.kind === "kubeconfig");
    const sealedAdminConf = kubeconfigStep ? commands.get(kubeconfigStep.id)!.stdout : undefined;
    this.kubeconfig = pulumi.secret(
      sealedAdminConf
        ? pulumi
            .all([sealedAdminConf, args.outputKey, args.externalIp])
            .apply(([sealed, key, ip]) => publicKubeconfig(adminConfFromStepOutput(sealed, key), ip, API_PORT))
        : pulumi.output(""),
    );
    this.registerOutputs({ steps: [...commands.keys()] });
  }

  private stepCommand(
    step: Step,
    config: ClusterConfig,
    plan: Plan,
    values: pulumi.Output<DeployValues>,
    sources: Readonly<Record<string, string>>,
    connectionTo: (node: string) => command.types.input.remote.ConnectionArgs,
    instanceOf: (node: string) => gcp.compute.Instance,
    resources: ReadonlyMap<string, pulumi.Resource>,
    args: ClusterBootstrapArgs,
  ): StepCommandResource {
    const resource = stepResource(plan, step, sources);
    const render = (v: DeployValues | undefined, instanceIdOf?: (node: string) => string) =>
      renderStepCommand(config, plan, step, v, sources, instanceIdOf);
    // Steps without secrets render now, in plain text, so `pulumi preview` shows their changes;
    // the others wait for the deploy-time secrets and stay secret. Backup steps name the bucket,
    // which Pulumi names at deploy time when it creates it.
    // A control plane's join credentials name the instance id of the machine about to join.
    const namedInstance = createInstanceIdMachine(plan, step);
    const stdin = resource.secret
      ? pulumi.secret(
          namedInstance === undefined
            ? values.apply((v) => render(v).bundle ?? "")
            : pulumi
                .all([values, instanceOf(namedInstance).instanceId])
                .apply(
                  ([v, id]) => render(v, (n) => (n === namedInstance ? id : instanceIdPlaceholder(n))).bundle ?? "",
                ),
        )
      : resource.usesBucket
        ? pulumi
            .output(args.backupBucket)
            .apply(
              (bucket) =>
                renderStepCommand(config, withBackupBucket(plan, bucket), step, undefined, sources).bundle ?? "",
            )
        : render(undefined).bundle;
    const common = {
      stdin,
      // A new VM (replacement) means a new machine: run the step again from scratch.
      triggers: resource.rerunWhenReplaced.map((name) => instanceOf(name).instanceId),
      // Secret-bearing steps print progress on stderr only (redacted by the scripts); the
      // kubeconfig step's stdout is the admin kubeconfig and never printed.
      logging: resource.secret ? ("stderr" as const) : ("stdoutAndStderr" as const),
      addPreviousOutputInEnv: false,
    };
    const options: pulumi.CustomResourceOptions = {
      parent: this,
      dependsOn: step.dependsOn.map((id) => {
        const dep = resources.get(id);
        if (!dep) throw new Error(`step ${step.id} depends on ${id}, which is not created before it`);
        return dep;
      }),
      additionalSecretOutputs: resource.secret ? ["stdout", "stderr"] : [],
      // Undo (delete action) on the old machine before the new one joins.
      deleteBeforeReplace: resource.deleteBeforeReplace,
      customTimeouts: resource.timeouts,
      aliases: resource.formerNames.map((name) => ({ name })),
      // Steps on their own machine: no delete (no SSH dial) when their VM is deleted with them.
      deletedWith: resource.deletedWith === undefined ? undefined : instanceOf(resource.deletedWith),
    };
    if (resource.local) {
      return new command.local.Command(resource.name, { ...common, create: resource.create! }, options);
    }
    return new command.remote.Command(
      resource.name,
      {
        ...common,
        connection: connectionTo(step.node),
        // Delete-only steps run nothing (and open no session) when created.
        create: resource.create,
        // The delete names the instance id of the machine it undoes, and acts only on that machine.
        delete:
          resource.delete === undefined
            ? undefined
            : instanceOf(step.subject).instanceId.apply(
                (id) => stepResource(plan, step, sources, () => id).delete ?? "",
              ),
      },
      options,
    );
  }
}
