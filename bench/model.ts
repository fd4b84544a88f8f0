// The deployment model the benchmark runs: the plan's step graph executed by an engine that runs at
// most `slots` operations at once, as `pulumi up --parallel` does, with per-step durations from
// bench/durations.json. It reports when the last step ends and, per machine, the most bootstrap
// SSH connections open on it at once. Pure: durations are passed in.
//
// Connections as pulumi-command really holds them: it closes a step's session but never its
// ssh.Client nor, through the jump host, the proxy client (remote/commandOutputs.go, connection.go),
// so a connection outlives its step until sshd's UnusedConnectionTimeout (render/cloudinit.ts)
// closes it: the target's once the session has closed, the jump host's (whose forwarding channel
// lasts as long as the target's connection) one timeout after that.

import { OPERATIONS_OUTSIDE_THE_PLAN, stepWidth } from "../render/parallelism";
import { Plan, Step, runsOnDeployer, runsOnMachine } from "../render/plan";
import { sshRoute, stepTraits } from "../render/steps";
import { UNUSED_CONNECTION_TIMEOUT_SECONDS } from "../render/cloudinit";

/** Per step kind: the modeled seconds with their basis, and what the real-cluster tier measured (`lab`). */
export type Durations = Record<string, { seconds: number; basis: string; lab?: LabDuration }>;

/** A step kind's durations on the real-cluster tier's fresh deploy (bench/lab-durations.ts). */
export interface LabDuration {
  readonly medianSeconds: number;
  readonly minSeconds: number;
  readonly maxSeconds: number;
  readonly samples: number;
}

export interface ModelResult {
  /** When the last step ends. */
  readonly seconds: number;
  /** Per machine, the most SSH sessions open on it at once (the jump host counts every hop). */
  readonly peakSessions: ReadonlyMap<string, number>;
  /** The most operations running at once. */
  readonly peakOperations: number;
}

/** The durations.json entry a step's duration comes from. */
export function durationKey(step: Step, plan: Plan): string {
  const role = plan.nodes.find((n) => n.name === step.subject)?.role;
  if (["prepare", "join", "member"].includes(step.kind)) {
    return `${step.kind}-${role === "control-plane" ? "control-plane" : "worker"}`;
  }
  if (step.kind === "load-balancer") return `load-balancer-${plan.loadBalancing.mode}`;
  return step.kind;
}

export function stepSeconds(step: Step, plan: Plan, durations: Durations): number {
  const entry = durations[durationKey(step, plan)];
  if (!entry) throw new Error(`bench/durations.json has no duration for ${durationKey(step, plan)}`);
  return entry.seconds;
}

/** The machines a step holds an SSH session on while it runs: the target, and the jump host on the way. */
function sessionsOf(step: Step, plan: Plan, hop: number): string[] {
  const target = runsOnDeployer(step) ? step.subject : runsOnMachine(step) ? step.node : undefined;
  if (!target || stepTraits(step).deleteOnly) return [];
  if (sshRoute(plan, target).direct) return [target];
  // With two HAProxy VMs the external load balancer spreads SSH over both: alternate.
  const jumps = plan.nodes.filter((n) => n.role === "loadbalancer");
  const jump = jumps[hop % jumps.length].name;
  return jump === target ? [target] : [target, jump];
}

interface Operation {
  readonly step: number;
  readonly seconds: number;
  readonly sessions: readonly string[];
  /** A login check: OpenSSH's client where `pulumi up` runs, which closes its connections at exit. */
  readonly local: boolean;
}

/**
 * How long a connection stays open after its step ends: one UnusedConnectionTimeout on the step's
 * machine; two on the jump host on the way (its channel closes with the target's connection).
 */
function lingerSeconds(op: Operation, machine: string, idleTimeout: number): number {
  if (op.local) return 0;
  return op.sessions.length > 1 && machine !== op.sessions[0] ? 2 * idleTimeout : idleTimeout;
}

/** Runs the plan with at most `slots` operations at a time (Infinity: unbounded). */
export function simulate(
  plan: Plan,
  durations: Durations,
  slots: number,
  /** sshd's UnusedConnectionTimeout; Infinity: connections stay until `pulumi` exits (older sshd). */
  idleTimeout: number = UNUSED_CONNECTION_TIMEOUT_SECONDS,
): ModelResult {
  const overhead = durations["engine-step-start"]?.seconds ?? 0;
  const index = new Map(plan.steps.map((s, i) => [s.id, i]));
  const dependents: number[][] = plan.steps.map(() => []);
  const waitingFor = plan.steps.map((s) => s.dependsOn.length);
  plan.steps.forEach((s, i) => s.dependsOn.forEach((d) => dependents[index.get(d)!].push(i)));
  const opsLeft = plan.steps.map((s) => stepWidth(plan, s));

  let hop = 0;
  const operationsOf = (i: number): Operation[] => {
    const step = plan.steps[i];
    return Array.from({ length: opsLeft[i] }, () => ({
      step: i,
      seconds: overhead + stepSeconds(step, plan, durations),
      sessions: sessionsOf(step, plan, hop++),
      local: runsOnDeployer(step),
    }));
  };
  // Ready operations in the order they became ready (then plan order): the engine's FIFO.
  const queue: Operation[] = [];
  const outside = durations["outside-the-plan"]?.seconds ?? 0;
  for (let k = 0; k < OPERATIONS_OUTSIDE_THE_PLAN; k++)
    queue.push({ step: -1, seconds: overhead + outside, sessions: [], local: true });
  let now = 0;
  let finished = 0;
  const done = (i: number): void => {
    finished++;
    for (const d of dependents[i]) {
      if (--waitingFor[d] === 0) enqueue(d);
    }
  };
  const enqueue = (i: number): void => {
    if (opsLeft[i] === 0)
      done(i); // a step with nothing to run (one HAProxy VM's tier)
    else queue.push(...operationsOf(i));
  };
  plan.steps.forEach((_, i) => {
    if (waitingFor[i] === 0) enqueue(i);
  });

  const running: { end: number; op: Operation }[] = [];
  const open = new Map<string, number>();
  const peakSessions = new Map<string, number>();
  let peakOperations = 0;
  // Connections of finished steps, closed by sshd at `at`.
  let closing: { at: number; machine: string }[] = [];
  let head = 0;
  while (head < queue.length || running.length > 0) {
    if (closing.length > 0) {
      for (const c of closing) if (c.at <= now) open.set(c.machine, open.get(c.machine)! - 1);
      closing = closing.filter((c) => c.at > now);
    }
    while (head < queue.length && running.length < slots) {
      const op = queue[head++];
      running.push({ end: now + op.seconds, op });
      for (const machine of op.sessions) {
        const count = (open.get(machine) ?? 0) + 1;
        open.set(machine, count);
        peakSessions.set(machine, Math.max(peakSessions.get(machine) ?? 0, count));
      }
    }
    peakOperations = Math.max(peakOperations, running.length);
    // The next operation to end (a linear scan: a few thousand operations at most).
    let next = 0;
    for (let k = 1; k < running.length; k++) if (running[k].end < running[next].end) next = k;
    const { end, op } = running[next];
    running.splice(next, 1);
    now = end;
    for (const machine of op.sessions) closing.push({ at: now + lingerSeconds(op, machine, idleTimeout), machine });
    if (op.step >= 0 && --opsLeft[op.step] === 0) done(op.step);
  }
  if (finished !== plan.steps.length) throw new Error(`only ${finished} of ${plan.steps.length} steps ran: a cycle?`);
  return { seconds: now, peakSessions, peakOperations };
}
