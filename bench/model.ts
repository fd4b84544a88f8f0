// The deployment model the benchmark runs: the plan's step graph executed by an engine that runs at
// most `slots` operations at once, as `pulumi up --parallel` does, with per-step durations from
// bench/durations.json. It reports when the last step ends and, per machine, the most bootstrap
// SSH sessions open on it at once. Pure: durations are passed in.

import { OPERATIONS_OUTSIDE_THE_PLAN, stepWidth } from "../render/parallelism";
import { Plan, Step, runsOnDeployer, runsOnMachine } from "../render/plan";
import { sshRoute, stepTraits } from "../render/steps";

export type Durations = Record<string, { seconds: number; basis: string }>;

export interface ModelResult {
  /** When the last step ends. */
  readonly seconds: number;
  /** Per machine, the most SSH sessions open on it at once (the jump host counts every hop). */
  readonly peakSessions: ReadonlyMap<string, number>;
  /** The most operations running at once. */
  readonly peakOperations: number;
}

function durationKey(step: Step, plan: Plan): string {
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
}

/** Runs the plan with at most `slots` operations at a time (Infinity: unbounded). */
export function simulate(plan: Plan, durations: Durations, slots: number): ModelResult {
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
    }));
  };
  // Ready operations in the order they became ready (then plan order): the engine's FIFO.
  const queue: Operation[] = [];
  const outside = durations["outside-the-plan"]?.seconds ?? 0;
  for (let k = 0; k < OPERATIONS_OUTSIDE_THE_PLAN; k++)
    queue.push({ step: -1, seconds: overhead + outside, sessions: [] });
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
  let head = 0;
  while (head < queue.length || running.length > 0) {
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
    for (const machine of op.sessions) open.set(machine, open.get(machine)! - 1);
    if (op.step >= 0 && --opsLeft[op.step] === 0) done(op.step);
  }
  if (finished !== plan.steps.length) throw new Error(`only ${finished} of ${plan.steps.length} steps ran: a cycle?`);
  return { seconds: now, peakSessions, peakOperations };
}
