// Runs a plan's bootstrap steps on the lab's machines the way `pulumi up` runs them on GCE: each
// step's command as components/bootstrap.ts declares it (render/step-resource.ts: the same create
// and delete commands, triggers, delete-before-replace and ignored changes), its bundle from the
// same render (renderStepCommand), piped over real SSH through the jump host to `sudo bash -s`
// (login checks: `bash -s` where the deployer runs), in dependency order, at most `parallel` at
// once, and recorded in a state that the next run diffs against, as the engine's state is:
//   - a step not in the state is created (its command runs);
//   - a step whose triggers (the instance ids of the machines it runs for) changed is replaced: its
//     stored delete command first (delete-before-replace), then the command;
//   - a step whose bundle changed is updated: @pulumi/command runs the create command again
//     (unless the step ignores stdin changes: init);
//   - anything else is left alone;
//   - steps and machines no longer in the plan are deleted after everything else, each after what
//     depends on it (pkg/resource/deploy: deletes are scheduled at the end of an update, in reverse
//     dependency order), with the delete command and connection stored when they were created.
// Like the engine without --continue-on-error, no new step starts once one has failed; the steps
// that depend on a failed one never run. The failure names the step, the machine and the tail of
// its output. Machines ("vm" steps) are the lab's: created when missing.

import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { ClusterConfig } from "../../../render/config";
import { INFRASTRUCTURE_KINDS, Plan, Step, runsOnDeployer, withBackupBucket } from "../../../render/plan";
import { DIAL, StepResource, stepResource } from "../../../render/step-resource";
import { DeployValues, instanceIdPlaceholder, renderStepCommand, sshRoute } from "../../../render/steps";
import { SSH_USER } from "../../../render/names";
import { RunResult, redact, run } from "../../control-plane/exec";
import { Lab } from "./lab";
import { sleep } from "../../tools";

/** Where a stored command runs: the deployer, or a machine's address (through the jump host or not). */
export type Target =
  { readonly kind: "deployer" } | { readonly kind: "ssh"; readonly host: string; readonly jump?: string };

export interface ResourceState {
  readonly id: string;
  readonly kind: Step["kind"];
  readonly node: string;
  readonly dependsOn: readonly string[];
  /** sha256 of the bundle last run (never the bundle: it may carry secrets). */
  readonly stdinHash?: string;
  readonly triggers: readonly string[];
  readonly deleteCommand?: string;
  readonly deleteBeforeReplace: boolean;
  /** The machine whose VM's deletion skips this step's delete (`deletedWith`; not a replacement). */
  readonly deletedWith?: string;
  readonly target: Target;
  /** The command's stdout (the kubeconfig step's is the stack's kubeconfig output). */
  readonly stdout?: string;
}

export interface EngineState {
  readonly resources: Record<string, ResourceState>;
}

export type Operation = "create" | "update" | "replace" | "same" | "delete" | "skipped";

export interface StepRecord {
  readonly id: string;
  readonly kind: Step["kind"];
  readonly node: string;
  readonly operation: Operation;
  readonly seconds: number;
  readonly ok: boolean;
  /** A delete the engine skipped: its `deletedWith` VM was deleted in the same run (pulumi's step.go). */
  readonly skippedWithVm?: boolean;
}

export interface DeployResult {
  readonly ok: boolean;
  readonly state: EngineState;
  readonly records: readonly StepRecord[];
  /** The first failure: the step, its machine and the tail of its output. */
  readonly failure?: string;
  /** Steps never started because a step they depend on, or an earlier one, failed. */
  readonly notRun: readonly string[];
}

export interface DeployInputs {
  readonly config: ClusterConfig;
  readonly plan: Plan;
  readonly values: DeployValues;
  readonly sources: Readonly<Record<string, string>>;
  /** The backup bucket's name (Pulumi names a created one at deploy time). */
  readonly bucket: string;
  /** At most this many operations at once (`pulumi up --parallel`). */
  readonly parallel: number;
  /** A test's bound on one command (not Pulumi's: @pulumi/command does not end a running command). */
  readonly stepTimeoutMs?: number;
  /**
   * The tier's stand-ins: a bundle that runs in a step's place (the same step, command, triggers
   * and delete; another bundle), where the real one cannot run here (Calico).
   */
  readonly standIns?: Partial<Record<Step["kind"], (step: Step) => string>>;
  /** Runs every command again as an update (the tier's "every step a second time"). */
  readonly rerunAll?: boolean;
  /** Called when a step's command starts (the tier injects faults there). */
  readonly onStart?: (step: Step, operation: Operation) => void;
  /** Called before a machine that left the plan is destroyed (the tier looks at it first). */
  readonly beforeDestroy?: (machine: string) => Promise<void>;
  readonly log?: (line: string) => void;
}

const SSH_OPTIONS = [
  "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
  "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
  "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3",
]; // prettier-ignore

const hash = (text: string) => createHash("sha256").update(text).digest("hex");
/** ssh's own messages for a connection that never reached the command (refused, unreachable, reset). */
const DIAL_FAILURE =
  /(connect to host \S+ port \d+: (Connection refused|No route to host|Connection timed out))|open failed: connect failed|kex_exchange_identification|Connection (closed|reset) by \S+ port \d+\s*$/m;

/** The ssh argv that runs `command` on a target (the jump hop as @pulumi/command's proxy: direct-tcpip). */
export function sshArgv(keyFile: string, target: Extract<Target, { kind: "ssh" }>, command: string): string[] {
  const options = ["-i", keyFile, ...SSH_OPTIONS];
  const proxy = target.jump ? ["-o", `ProxyCommand=ssh ${options.join(" ")} -W %h:%p ${SSH_USER}@${target.jump}`] : [];
  return ["ssh", ...options, ...proxy, `${SSH_USER}@${target.host}`, command];
}

function targetOf(plan: Plan, step: Step, externalIp: string): Target {
  if (runsOnDeployer(step)) return { kind: "deployer" };
  const route = sshRoute(plan, step.node);
  return route.direct ? { kind: "ssh", host: externalIp } : { kind: "ssh", host: route.internalIp, jump: externalIp };
}

interface Desired {
  readonly step: Step;
  readonly resource?: StepResource;
  readonly stdin?: string;
  readonly triggers: readonly string[];
  readonly target: Target;
}

export class Engine {
  private readonly keyFile: string;

  constructor(
    private readonly lab: Lab,
    private readonly workDir: string,
  ) {
    fs.mkdirSync(workDir, { recursive: true, mode: 0o700 });
    this.keyFile = path.join(workDir, "ssh-key");
  }

  /**
   * Runs one command where a step's command runs; stdout and the interleaved output, redacted. Over
   * SSH it first dials as @pulumi/command does, again after a connection refused, reset or
   * unreachable (DIAL: up to dialErrorLimit attempts, 100 ms apart at first, backing off to 5 s),
   * then runs the command once: a session that breaks is a failure, as it is for the provider.
   */
  async runOn(target: Target, command: string, stdin: string | undefined, timeoutMs: number): Promise<RunResult> {
    const inDeployer = (argv: string[], input: string) => {
      const [cmd, ...args] = this.lab.deployerArgs(argv);
      return run(cmd, args, { input, timeoutMs, cwd: this.workDir });
    };
    if (target.kind === "deployer") return inDeployer(["bash", "-c", command], stdin ?? "");
    let wait = 100;
    for (let attempt = 1; ; attempt++) {
      const dial = await inDeployer(sshArgv(this.keyFile, target, "true"), "");
      if (dial.code === 0) break;
      if (!DIAL_FAILURE.test(dial.output) || attempt >= DIAL.dialErrorLimit) return dial;
      await sleep(wait);
      wait = Math.min(wait * 2, 5000);
    }
    return inDeployer(sshArgv(this.keyFile, target, command), stdin ?? "");
  }

  /** A step's command as the program declares it; its machines exist by then (see dependencies). */
  private desired(inputs: DeployInputs, step: Step): Desired {
    const { config, values, sources } = inputs;
    const plan = withBackupBucket(inputs.plan, inputs.bucket);
    if (INFRASTRUCTURE_KINDS.has(step.kind)) return { step, triggers: [], target: { kind: "deployer" } };
    const target = targetOf(plan, step, values.externalIp);
    // Delete commands name the instance id of the machine they undo, as components/bootstrap.ts
    // passes the VM's instanceId.
    const instanceIdOf = (node: string) => this.lab.machines.get(node)?.instanceId ?? instanceIdPlaceholder(node);
    const resource = stepResource(plan, step, sources, instanceIdOf);
    const standIn = inputs.standIns?.[step.kind];
    // The creates that name an instance id (a control plane's join credentials) get it as well.
    const stdin = standIn
      ? standIn(step)
      : renderStepCommand(config, plan, step, resource.secret ? values : undefined, sources, instanceIdOf).bundle;
    const triggers = resource.rerunWhenReplaced.map((n) => this.lab.machine(n).instanceId);
    return { step, resource, stdin, triggers, target };
  }

  async deploy(inputs: DeployInputs, previous: EngineState): Promise<DeployResult> {
    fs.writeFileSync(this.keyFile, inputs.values.sshPrivateKey, { mode: 0o600 });
    const log = inputs.log ?? (() => undefined);
    const state: Record<string, ResourceState> = { ...previous.resources };
    const records: StepRecord[] = [];
    const timeoutMs = inputs.stepTimeoutMs ?? 15 * 60_000;
    // Machines first exist as the plan says (a "vm" step is the lab creating it when missing); the
    // desired commands are computed once they do (their triggers are the machines' instance ids).
    const steps = inputs.plan.steps;
    const done = new Map<string, boolean>(); // id -> succeeded
    let failure: string | undefined;
    const running = new Set<Promise<void>>();

    const start = (step: Step): Promise<void> => {
      const began = Date.now();
      const finish = (operation: Operation, ok: boolean, detail?: string) => {
        records.push({
          id: step.id,
          kind: step.kind,
          node: step.node,
          operation,
          seconds: (Date.now() - began) / 1000,
          ok,
        });
        done.set(step.id, ok);
        if (!ok && !failure) failure = detail;
        if (operation !== "same")
          log(`${ok ? "done" : "FAILED"} ${operation} ${step.id} (${((Date.now() - began) / 1000).toFixed(1)} s)`);
      };
      return (async () => {
        try {
          if (step.kind === "vm") {
            const exists = this.lab.machines.has(step.node);
            if (!exists) await this.lab.createMachine(inputs.plan.nodes.find((n) => n.name === step.node)!);
            state[step.id] = { id: step.id, kind: step.kind, node: step.node, dependsOn: waitsFor.get(step.id)!, triggers: [this.lab.machine(step.node).instanceId], deleteBeforeReplace: true, target: { kind: "deployer" } }; // prettier-ignore
            finish(exists ? "same" : "create", true);
            return;
          }
          const want = this.desired(inputs, step);
          if (!want.resource) {
            finish("same", true);
            return;
          }
          const old = state[step.id];
          const stdinHash = want.stdin === undefined ? undefined : hash(want.stdin);
          let operation: Operation;
          if (!old) operation = "create";
          else if (old.triggers.join(",") !== want.triggers.join(",")) operation = "replace";
          else if (old.stdinHash !== stdinHash) operation = "update";
          else operation = inputs.rerunAll && want.resource.create !== undefined ? "update" : "same";
          if (operation === "same") {
            finish("same", true);
            return;
          }
          log(`${operation} ${step.id} on ${step.node}`);
          inputs.onStart?.(step, operation);
          if (operation === "replace" && old.deleteCommand && old.deleteBeforeReplace) {
            const result = await this.runOn(old.target, old.deleteCommand, undefined, timeoutMs);
            // What the old delete did (or why it did nothing), for the log.
            const said = redact(result.output).trim().split("\n").pop() ?? "";
            log(`old delete of ${step.id} (to replace it): ${said.replace(/^\S+ \[\w+(-\w+)?\] /, "")}`);
            if (result.code !== 0) {
              finish(operation, false, describe(`deleting ${step.id} (to replace it)`, step.node, result));
              return;
            }
          }
          let stdout = "";
          if (want.resource.create !== undefined) {
            const result = await this.runOn(want.target, want.resource.create, want.stdin, timeoutMs);
            if (result.code !== 0) {
              finish(operation, false, describe(step.id, step.node, result));
              return;
            }
            stdout = result.stdout;
          }
          state[step.id] = {
            id: step.id,
            kind: step.kind,
            node: step.node,
            dependsOn: waitsFor.get(step.id)!,
            stdinHash,
            triggers: want.triggers,
            deleteCommand: want.resource.delete,
            deleteBeforeReplace: want.resource.deleteBeforeReplace,
            deletedWith: want.resource.deletedWith,
            target: want.target,
            stdout,
          };
          finish(operation, true);
        } catch (error) {
          finish("create", false, `${step.id} on ${step.node}: ${(error as Error).message}`);
        }
      })();
    };

    // Dependency order with at most `parallel` operations at once; nothing new after a failure. A
    // step also waits for the machines in its triggers (the engine waits for every input's value:
    // their instance ids).
    const pending = new Set(steps.map((s) => s.id));
    const byId = new Map(steps.map((s) => [s.id, s]));
    const waitsFor = new Map(
      steps.map((s) => [
        s.id,
        [...s.dependsOn, ...(INFRASTRUCTURE_KINDS.has(s.kind) ? [] : s.rerunWhenReplaced.map((n) => `${n}/vm`))],
      ]),
    );
    while (pending.size > 0 || running.size > 0) {
      if (!failure) {
        for (const id of [...pending]) {
          if (running.size >= inputs.parallel) break;
          const step = byId.get(id)!;
          if (!waitsFor.get(id)!.every((d) => done.get(d) === true)) continue;
          pending.delete(id);
          const p: Promise<void> = start(step).finally(() => running.delete(p));
          running.add(p);
        }
      }
      if (running.size === 0) break;
      await Promise.race(running);
    }
    const notRun = [...pending];
    if (failure) return { ok: false, state: { resources: state }, records, failure, notRun };

    // Deletes: what the plan no longer has, each after everything that depends on it.
    const wanted = new Set(steps.map((s) => s.id));
    const gone = Object.values(state).filter((r) => !wanted.has(r.id));
    const remaining = new Set(gone.map((r) => r.id));
    const deleting = new Set<Promise<void>>();
    // deletedWith: the engine marks every resource it deletes first, and skips the provider's Delete of
    // one whose deletedWith resource is among them (pkg/resource/deploy step.go isDeletedWith). Not for
    // a replacement: a replaced VM is not a deletion there (pulumi/pulumi#19924).
    const vmsDeleted = new Set(gone.filter((r) => r.kind === "vm").map((r) => r.node));
    const deleteOne = async (r: ResourceState): Promise<void> => {
      const began = Date.now();
      let ok = true;
      const skippedWithVm = r.kind !== "vm" && r.deletedWith !== undefined && vmsDeleted.has(r.deletedWith);
      if (skippedWithVm) {
        if (r.deleteCommand) log(`skip delete ${r.id}: deleted with ${r.deletedWith}'s VM`);
      } else if (r.kind === "vm") {
        if (this.lab.machines.has(r.node)) {
          await inputs.beforeDestroy?.(r.node);
          this.lab.destroyMachine(r.node);
        }
      } else if (r.deleteCommand) {
        log(`delete ${r.id} on ${r.node}`);
        const result = await this.runOn(r.target, r.deleteCommand, undefined, timeoutMs);
        if (result.code !== 0) {
          ok = false;
          failure ??= describe(`deleting ${r.id}`, r.node, result);
        }
      }
      records.push({
        id: r.id,
        kind: r.kind,
        node: r.node,
        operation: "delete",
        seconds: (Date.now() - began) / 1000,
        ok,
        ...(skippedWithVm && r.deleteCommand ? { skippedWithVm: true } : {}),
      });
      if (ok) delete state[r.id];
      log(`${ok ? "done" : "FAILED"} delete ${r.id}`);
    };
    // Not deleted yet: waiting, or being deleted right now.
    const undeleted = new Set(remaining);
    while (remaining.size > 0 || deleting.size > 0) {
      if (!failure) {
        for (const id of [...remaining]) {
          if (deleting.size >= inputs.parallel) break;
          // Only once everything that depends on it is gone (not merely started going).
          if ([...undeleted].some((other) => other !== id && state[other]?.dependsOn.includes(id))) continue;
          remaining.delete(id);
          const p: Promise<void> = deleteOne(state[id]).finally(() => {
            deleting.delete(p);
            undeleted.delete(id);
          });
          deleting.add(p);
        }
      }
      if (deleting.size === 0) break;
      await Promise.race(deleting);
    }
    return { ok: !failure, state: { resources: state }, records, failure, notRun: [...remaining] };
  }
}

function describe(what: string, machine: string, result: RunResult): string {
  const tail = redact(result.output).trimEnd().split("\n").slice(-25).join("\n");
  return `${what} on ${machine} failed (${result.timedOut ? "timed out" : `exit ${result.code}`}):\n${tail}`;
}
