// npm run bench: what can be measured here about deployment speed and program cost, and an honest
// model of the rest. Prints one table and writes bench/results.json.
//  1. Program cost vs size: the real index.ts under the unit tests' mocks (bench/run-program.ts),
//     run by ts-node as `pulumi up` runs it, one process per size: wall time, peak RSS, resources.
//  2. Bootstrap critical path from the rendered plan: steps, longest chain, and a modeled time to
//     all nodes Ready using the per-step durations in bench/durations.json (estimates, with basis).
//  3. Per-node footprint: the real prepare bundles run on a stub machine, counting apt-get updates,
//     repositories, packages and image pulls.

import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolveConfig } from "../render/config";
import { renderAll } from "../render/artifacts";
import { Plan, Step, longestChain } from "../render/plan";
import { PROJECT_DIR, readProjectFile } from "../render/project";
import { readScriptSources } from "../render/scripts";

interface Size {
  readonly controlPlanes: number;
  readonly workers: number;
}
const SIZES: Size[] = [
  { controlPlanes: 3, workers: 2 },
  { controlPlanes: 3, workers: 20 },
  { controlPlanes: 3, workers: 100 },
  { controlPlanes: 5, workers: 100 },
  { controlPlanes: 5, workers: 300 },
];
// 305 nodes need more than a /16 of pod addresses at /24 per node; everything else is the default.
const valuesFor = (size: Size) => ({
  controlPlaneCount: size.controlPlanes,
  workerCount: size.workers,
  podCidr: "10.244.0.0/15",
  adminCidrs: ["203.0.113.0/24"],
});

const GOALS = {
  programSeconds: 20,
  programBytes: 1024 ** 3,
  modeledSmallSeconds: 600,
  modeledWorkerGrowthSeconds: 60,
  aptUpdatesPerNode: 1,
};

type Durations = Record<string, { seconds: number; basis: string }>;
const durations = JSON.parse(fs.readFileSync(path.join(__dirname, "durations.json"), "utf8")) as Durations;

function stepSeconds(step: Step, plan: Plan): number {
  const role = plan.nodes.find((n) => n.name === step.subject)?.role;
  const key = ["prepare", "join", "member"].includes(step.kind)
    ? `${step.kind}-${role === "control-plane" ? "control-plane" : "worker"}`
    : step.kind === "load-balancer"
      ? `load-balancer-${plan.loadBalancing.mode}`
      : step.kind;
  const entry = durations[key];
  if (!entry) throw new Error(`bench/durations.json has no duration for ${key}`);
  return entry.seconds;
}

/** Earliest time every step can finish, with unbounded parallelism (pulumi up's default --parallel). */
function modeledSeconds(plan: Plan): number {
  const finish = new Map<string, number>();
  const byId = new Map(plan.steps.map((s) => [s.id, s]));
  const at = (id: string): number => {
    const known = finish.get(id);
    if (known !== undefined) return known;
    const step = byId.get(id)!;
    const start = Math.max(0, ...step.dependsOn.map(at));
    const end = start + stepSeconds(step, plan);
    finish.set(id, end);
    return end;
  };
  return Math.max(...plan.steps.map((s) => at(s.id)));
}

function programCost(size: Size): { seconds: number; wallSeconds: number; maxRssBytes: number; resources: number } {
  const started = process.hrtime.bigint();
  const result = spawnSync(
    process.execPath,
    [
      require.resolve("ts-node/dist/bin.js"),
      "--transpile-only",
      path.join(__dirname, "run-program.ts"),
      JSON.stringify({ values: valuesFor(size) }),
      "--stats",
    ],
    { encoding: "utf8", cwd: PROJECT_DIR, maxBuffer: 64 * 1024 * 1024 },
  );
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const line = result.stdout.split("\n").find((l) => l.startsWith("STATS "));
  if (result.status !== 0 || !line)
    throw new Error(`program run failed for ${JSON.stringify(size)}:\n${result.stderr}`);
  return { ...JSON.parse(line.slice(6)), wallSeconds };
}

function footprint(bundle: string): { aptUpdates: number; repositories: string; packages: string; imagePulls: number } {
  const out = execFileSync("bash", [path.join(__dirname, "footprint.sh"), bundle], { encoding: "utf8" });
  return JSON.parse(out.trim());
}

function table(rows: (string | number)[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i])).join("  ")).join("\n");
}

function main(): void {
  const defaults = readProjectFile().defaults;
  const sources = readScriptSources();
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.versions.node}`;
  const results: Record<string, unknown>[] = [];
  for (const size of SIZES) {
    const config = resolveConfig(valuesFor(size), defaults).config!;
    const { plan } = renderAll(config, sources);
    const chain = longestChain(plan.steps);
    const cost = programCost(size);
    results.push({
      size: `${size.controlPlanes} CP + ${size.workers} W`,
      ...size,
      programSeconds: Number(cost.seconds.toFixed(2)),
      processWallSeconds: Number(cost.wallSeconds.toFixed(2)),
      peakRssMiB: Math.round(cost.maxRssBytes / 1024 ** 2),
      resources: cost.resources,
      steps: plan.steps.length,
      longestChain: chain.length,
      modeledMinutes: Number((modeledSeconds(plan) / 60).toFixed(1)),
    });
    console.error(`measured ${size.controlPlanes} CP + ${size.workers} W`);
  }

  // Footprint per role, from the dev-sized render's real bundles.
  const small = renderAll(resolveConfig(valuesFor(SIZES[0]), defaults).config!, sources);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ha-k8s-bench-"));
  const bundleOf = (role: string) => {
    const node = small.plan.nodes.find((n) => n.role === role)!;
    const file = small.files.find((f) => f.path.startsWith(`${node.name}/`) && f.path.endsWith("-prepare.sh"))!;
    const target = path.join(dir, `${role}.sh`);
    fs.writeFileSync(target, file.content);
    return target;
  };
  const footprints = { "control-plane": footprint(bundleOf("control-plane")), worker: footprint(bundleOf("worker")) };
  fs.rmSync(dir, { recursive: true, force: true });

  const bySize = (cp: number, w: number) => results.find((r) => r.controlPlanes === cp && r.workers === w)!;
  const largest = bySize(5, 300);
  const smallest = bySize(3, 2);
  const hundred = bySize(3, 100);
  const goals = [
    [
      "5 CP + 300 W program evaluation time",
      `${largest.programSeconds} s`,
      `< ${GOALS.programSeconds} s`,
      (largest.programSeconds as number) < GOALS.programSeconds,
    ],
    [
      "5 CP + 300 W peak memory",
      `${largest.peakRssMiB} MiB`,
      "< 1024 MiB",
      (largest.peakRssMiB as number) * 1024 ** 2 < GOALS.programBytes,
    ],
    [
      "modeled time to Ready, 3 CP + 2 W",
      `${smallest.modeledMinutes} min`,
      "< 10 min",
      (smallest.modeledMinutes as number) * 60 < GOALS.modeledSmallSeconds,
    ],
    [
      "modeled 3 CP + 100 W minus 3 CP + 2 W",
      `${(((hundred.modeledMinutes as number) - (smallest.modeledMinutes as number)) * 60).toFixed(0)} s`,
      "< 60 s",
      ((hundred.modeledMinutes as number) - (smallest.modeledMinutes as number)) * 60 <
        GOALS.modeledWorkerGrowthSeconds,
    ],
    ...Object.entries(footprints).map(([role, f]) => [
      `apt-get updates per ${role} node`,
      String(f.aptUpdates),
      "= 1",
      f.aptUpdates === GOALS.aptUpdatesPerNode,
    ]),
  ] as [string, string, string, boolean][];

  const header = [
    "size",
    "program s",
    "process s",
    "peak RSS MiB",
    "resources",
    "steps",
    "longest chain",
    "modeled min to Ready",
  ];
  console.log(`ha-k8s benchmark, ${new Date().toISOString().slice(0, 10)}, ${machine}\n`);
  console.log(
    table([
      header,
      ...results.map(
        (r) =>
          [
            r.size,
            r.programSeconds,
            r.processWallSeconds,
            r.peakRssMiB,
            r.resources,
            r.steps,
            r.longestChain,
            r.modeledMinutes,
          ] as (string | number)[],
      ),
    ]),
  );
  console.log("\nper-node footprint (the real prepare bundle on a stub machine):");
  console.log(
    table([
      ["role", "apt-get updates", "repositories", "packages", "image pre-pulls"],
      ...Object.entries(footprints).map(([role, f]) => [role, f.aptUpdates, f.repositories, f.packages, f.imagePulls]),
    ]),
  );
  console.log("bytes downloaded: not knowable here (pkgs.k8s.io and download.opensuse.org are unreachable offline)");
  console.log("\ngoals:");
  console.log(
    table([["goal", "measured", "target", "met"], ...goals.map(([g, m, t, ok]) => [g, m, t, ok ? "yes" : "NO"])]),
  );

  const out = {
    date: new Date().toISOString(),
    machine,
    sizes: results,
    footprints,
    goals: goals.map(([goal, measured, target, met]) => ({ goal, measured, target, met })),
  };
  fs.writeFileSync(path.join(__dirname, "results.json"), `${JSON.stringify(out, null, 2)}\n`);
  if (goals.some(([, , , ok]) => !ok)) process.exitCode = 1;
}

main();
