// The --parallel a deployment needs: the width of the plan's step graph (render/parallelism.ts).

import { resolveConfig } from "../../render/config";
import {
  OPERATIONS_OUTSIDE_THE_PLAN,
  deployParallelism,
  parallelismWarning,
  planWidth,
} from "../../render/parallelism";
import { Plan, Step, buildPlan } from "../../render/plan";
import { readProjectFile } from "../../render/project";

const planOf = (values: Record<string, unknown>): Plan =>
  buildPlan(resolveConfig({ podCidr: "10.244.0.0/14", ...values }, readProjectFile().defaults).config!);

/** A plan of plain one-operation steps (no network, no load balancer) over the given edges. */
function dagPlan(size: number, edges: [number, number][]): Plan {
  const steps: Step[] = Array.from({ length: size }, (_, i) => ({
    id: `s${i}`,
    kind: "prepare",
    node: "n",
    subject: "n",
    dependsOn: edges.filter(([, to]) => to === i).map(([from]) => `s${from}`),
    description: "",
    rerunWhenReplaced: [],
  }));
  return { ...planOf({}), firewall: [], steps };
}

/** The largest set of pairwise independent steps, by trying every subset. */
function bruteForceWidth(size: number, edges: [number, number][]): number {
  const reach = Array.from({ length: size }, () => new Set<number>());
  for (let k = 0; k < size; k++) {
    for (const [from, to] of edges) reach[from].add(to);
  }
  for (let round = 0; round < size; round++) {
    for (let a = 0; a < size; a++) for (const b of [...reach[a]]) for (const c of reach[b]) reach[a].add(c);
  }
  let best = 0;
  for (let mask = 0; mask < 1 << size; mask++) {
    const members = [...Array(size).keys()].filter((i) => mask & (1 << i));
    const independent = members.every((a) => members.every((b) => a === b || !reach[a].has(b)));
    if (independent) best = Math.max(best, members.length);
  }
  return best;
}

test("the width is the largest set of pairwise independent steps (random graphs, checked by brute force)", () => {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let trial = 0; trial < 60; trial++) {
    const size = 3 + Math.floor(random() * 9);
    const edges: [number, number][] = [];
    for (let a = 0; a < size; a++) {
      for (let b = a + 1; b < size; b++) if (random() < 0.3) edges.push([a, b]);
    }
    expect([trial, planWidth(dagPlan(size, edges)) - OPERATIONS_OUTSIDE_THE_PLAN]).toEqual([
      trial,
      bruteForceWidth(size, edges),
    ]);
  }
});

test("a chain is one wide, independent steps are as wide as they are many", () => {
  expect(
    planWidth(
      dagPlan(5, [
        [0, 1],
        [1, 2],
        [2, 3],
        [3, 4],
      ]),
    ) - OPERATIONS_OUTSIDE_THE_PLAN,
  ).toBe(1);
  expect(planWidth(dagPlan(5, [])) - OPERATIONS_OUTSIDE_THE_PLAN).toBe(5);
});

test("workers widen the plan (each runs its own steps), and the result is a multiple of 8", () => {
  const small = deployParallelism(planOf({ workerCount: 2 }));
  // Every worker's readiness check and its (delete-only) removal step can be in flight at once.
  expect(planWidth(planOf({ workerCount: 100 }))).toBeGreaterThanOrEqual(2 * 100);
  expect(planWidth(planOf({ controlPlaneCount: 5, workerCount: 300 }))).toBeGreaterThanOrEqual(2 * 300);
  for (const p of [
    small,
    deployParallelism(planOf({ workerCount: 100 })),
    deployParallelism(planOf({ controlPlaneCount: 5, workerCount: 300 })),
  ]) {
    expect(p % 8).toBe(0);
  }
  // The engine's default on a 2-vCPU machine (8) is far below even the smallest cluster's width.
  expect(small).toBeGreaterThan(8);
});

test("the warning names what to set, and stays quiet when the engine allows enough or is unknown", () => {
  const plan = planOf({ workerCount: 20 });
  const needed = deployParallelism(plan);
  expect(parallelismWarning(plan, 8)).toContain(`--parallel ${needed}`);
  expect(parallelismWarning(plan, needed)).toBeUndefined();
  expect(parallelismWarning(plan, undefined)).toBeUndefined();
});
