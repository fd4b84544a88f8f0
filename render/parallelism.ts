// How many resource operations `pulumi up` must be allowed to run at once so that no step of the
// plan ever waits for a free slot. The engine runs at most `--parallel` operations at a time; its
// default is 4 x the CPUs of the machine running it (defaultParallel in pulumi/pulumi
// pkg/cmd/pulumi/operations/up.go; PULUMI_PARALLEL overrides it), 8 on a 2-vCPU CI runner, far below
// what a plan with a hundred machines can run side by side. Pure: no Pulumi, no I/O.
//
// The answer is the width of the plan's step graph: the largest set of steps no two of which depend
// on each other, directly or not (an antichain). Any such set can be running at the same moment,
// whatever the real durations are, and no larger set can. By Dilworth's theorem the width is the
// number of steps minus a maximum matching in the bipartite "comes before" graph of the transitive
// closure. Steps that are several GCP resources running side by side (the network: the firewall
// rules, subnet and router once the VPC exists) count as that many.

import { Plan, Step } from "./plan";

/**
 * Engine operations outside the plan's steps, all free to run at the start: the SSH key, the CA key
 * and certificate, the join seed (tls), the nodes' service account, the external and endpoint
 * addresses, and the stack's reference to itself.
 */
export const OPERATIONS_OUTSIDE_THE_PLAN = 8;

/** How many engine operations a step runs side by side at its widest. */
export function stepWidth(plan: Plan, step: Step): number {
  switch (step.kind) {
    case "network":
      // After the VPC: the subnet, the router and every firewall rule at once (then the NAT).
      return plan.firewall.length + 2;
    case "load-balancer":
      // One HAProxy VM: nothing beyond the VM. Two: the health check and both instance groups,
      // then the backend services, then the forwarding rules.
      return plan.loadBalancing.mode === "vm" ? 0 : 1 + plan.loadBalancing.instanceGroups.length;
    default:
      return 1;
  }
}

/** The width of the plan's step graph, steps weighted by stepWidth (see the file comment). */
export function planWidth(plan: Plan): number {
  // Expand weighted steps into copies that share their step's dependencies.
  const index = new Map(plan.steps.map((s, i) => [s.id, i]));
  const copies: number[] = []; // copy -> step index
  for (const [i, step] of plan.steps.entries()) {
    for (let c = 0; c < stepWidth(plan, step); c++) copies.push(i);
  }
  const n = plan.steps.length;
  // Transitive closure over steps (bitsets of successors), in dependency order.
  const words = Math.ceil(n / 32);
  const after: Uint32Array[] = plan.steps.map(() => new Uint32Array(words));
  const order = topologicalOrder(plan.steps, index);
  for (const i of [...order].reverse()) {
    for (const dep of plan.steps[i].dependsOn) {
      const d = index.get(dep)!;
      const into = after[d];
      into[i >> 5] |= 1 << (i & 31);
      const from = after[i];
      for (let w = 0; w < words; w++) into[w] |= from[w];
    }
  }
  // Bipartite graph copy -> copy (left comes before right); maximum matching (Hopcroft-Karp).
  const byStep: number[][] = plan.steps.map(() => []);
  copies.forEach((step, copy) => byStep[step].push(copy));
  const successors = (copy: number): number[] => {
    const out: number[] = [];
    const bits = after[copies[copy]];
    for (let w = 0; w < words; w++) {
      let word = bits[w];
      while (word !== 0) {
        const bit = 31 - Math.clz32(word & -word);
        out.push(...byStep[w * 32 + bit]);
        word &= word - 1;
      }
    }
    return out;
  };
  const matching = maximumMatching(copies.length, successors);
  return copies.length - matching + OPERATIONS_OUTSIDE_THE_PLAN;
}

/**
 * The --parallel that `npm run deploy`, `npm run destroy` and the workflows pass: the plan's width
 * rounded up to a multiple of 8 (the engine's own default steps, on a 2-vCPU machine).
 */
export function deployParallelism(plan: Plan): number {
  return Math.ceil(planWidth(plan) / 8) * 8;
}

/**
 * A warning when the engine's parallelism is below what the plan needs, or undefined. `engine` is
 * what the engine told the program (the language host passes `--parallel`, which @pulumi/pulumi
 * keeps in PULUMI_NODEJS_PARALLEL); undefined or below 1 when it is not known.
 */
export function parallelismWarning(plan: Plan, engine: number | undefined): string | undefined {
  const needed = deployParallelism(plan);
  if (engine === undefined || !Number.isFinite(engine) || engine < 1 || engine >= needed) return undefined;
  return (
    `this deployment can run up to ${needed} operations at once, but pulumi runs at most ${engine} ` +
    `(--parallel defaults to 4 x this machine's CPUs), so steps will queue and the cluster takes longer to build: ` +
    `run pulumi up --parallel ${needed} (or set PULUMI_PARALLEL=${needed}); npm run deploy does this for you`
  );
}

function topologicalOrder(steps: readonly Step[], index: ReadonlyMap<string, number>): number[] {
  const order: number[] = [];
  const state = new Uint8Array(steps.length); // 0 new, 1 visiting, 2 done
  const visit = (i: number): void => {
    if (state[i] === 2) return;
    if (state[i] === 1) throw new Error(`dependency cycle through ${steps[i].id}`);
    state[i] = 1;
    for (const dep of steps[i].dependsOn) {
      const d = index.get(dep);
      if (d === undefined) throw new Error(`step ${steps[i].id} depends on unknown step ${dep}`);
      visit(d);
    }
    state[i] = 2;
    order.push(i);
  };
  steps.forEach((_, i) => visit(i));
  return order;
}

/** Hopcroft-Karp: size of a maximum matching of a bipartite graph with n left and n right vertices. */
function maximumMatching(n: number, neighbours: (left: number) => number[]): number {
  const adjacency = Array.from({ length: n }, (_, u) => neighbours(u));
  const matchLeft = new Int32Array(n).fill(-1);
  const matchRight = new Int32Array(n).fill(-1);
  const distance = new Int32Array(n);
  const INF = 0x3fffffff;
  let size = 0;
  for (;;) {
    // Breadth-first layering from the free left vertices.
    const queue: number[] = [];
    for (let u = 0; u < n; u++) {
      distance[u] = matchLeft[u] === -1 ? 0 : INF;
      if (matchLeft[u] === -1) queue.push(u);
    }
    let found = false;
    for (let head = 0; head < queue.length; head++) {
      const u = queue[head];
      for (const v of adjacency[u]) {
        const w = matchRight[v];
        if (w === -1) found = true;
        else if (distance[w] === INF) {
          distance[w] = distance[u] + 1;
          queue.push(w);
        }
      }
    }
    if (!found) return size;
    // Depth-first augmentation along the layers (iterative, so deep graphs cannot overflow the stack).
    const next = new Int32Array(n);
    for (let start = 0; start < n; start++) {
      if (matchLeft[start] !== -1) continue;
      const path: number[] = [start];
      while (path.length > 0) {
        const u = path[path.length - 1];
        if (next[u] >= adjacency[u].length) {
          distance[u] = INF;
          path.pop();
          continue;
        }
        const v = adjacency[u][next[u]++];
        const w = matchRight[v];
        if (w === -1) {
          // Augment: flip the matched edges along the path.
          let right = v;
          for (let k = path.length - 1; k >= 0; k--) {
            const left = path[k];
            const previous = matchLeft[left];
            matchLeft[left] = right;
            matchRight[right] = left;
            right = previous;
          }
          size++;
          break;
        }
        if (distance[w] === distance[u] + 1) path.push(w);
      }
    }
  }
}
