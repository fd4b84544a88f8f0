// npm run bench: what can be measured here about deployment speed and program cost, and an honest
// model of the rest. Prints one table and writes bench/results.json.
//  1. Program cost vs size: the real index.ts under the unit tests' mocks (bench/run-program.ts),
//     run by ts-node as `pulumi up` runs it, one process per size: wall time, peak RSS, resources.
//  2. Bootstrap from the rendered plan: steps, longest chain, and a modeled time to all nodes Ready
//     (bench/model.ts) with the per-step durations in bench/durations.json (estimates, with basis),
//     run by an engine with a bounded pool of slots, as `pulumi up --parallel` is: at the
//     parallelism npm run deploy passes (render/parallelism.ts) and at the engine's default on a
//     2-vCPU machine (4 x CPUs = 8). Also the most SSH sessions each machine holds at once.
//  3. Per-node footprint: the real prepare bundles run on a stub machine, counting apt-get updates,
//     repositories, packages and image pulls.

import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolveConfig } from "../render/config";
import { renderAll } from "../render/artifacts";
import { deployParallelism } from "../render/parallelism";
import { longestChain } from "../render/plan";
import { PROJECT_DIR, readProjectFile } from "../render/project";
import { readScriptSources } from "../render/scripts";
import { Durations, simulate } from "./model";

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
  /** 3 CP + 100 W at deployParallel within 10 % of 3 CP + 2 W. */
  modeledWorkerGrowth: 0.1,
  /** At 5 CP + 300 W, no control plane holds more bootstrap SSH sessions at once. */
  controlPlaneSessions: 20,
  aptUpdatesPerNode: 1,
};
/** pulumi up's default --parallel on a 2-vCPU machine: 4 x CPUs (defaultParallel, up.go). */
const ENGINE_DEFAULT_2_CPU = 8;

const durations = JSON.parse(fs.readFileSync(path.join(__dirname, "durations.json"), "utf8")) as Durations;

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
  const sessionPeaks: Record<string, Record<string, number>> = {};
  for (const size of SIZES) {
    const config = resolveConfig(valuesFor(size), defaults).config!;
    const { plan } = renderAll(config, sources);
    const chain = longestChain(plan.steps);
    const cost = programCost(size);
    const deployParallel = deployParallelism(plan);
    const atDeploy = simulate(plan, durations, deployParallel);
    const atDefault = simulate(plan, durations, ENGINE_DEFAULT_2_CPU);
    const label = `${size.controlPlanes} CP + ${size.workers} W`;
    const peaks = Object.fromEntries([...atDeploy.peakSessions].sort((a, b) => b[1] - a[1]));
    sessionPeaks[label] = peaks;
    const roleOf = (machine: string) => plan.nodes.find((n) => n.name === machine)?.role;
    const max = (role: string) =>
      Math.max(
        0,
        ...Object.entries(peaks)
          .filter(([m]) => roleOf(m) === role)
          .map(([, n]) => n),
      );
    results.push({
      size: label,
      ...size,
      programSeconds: Number(cost.seconds.toFixed(2)),
      processWallSeconds: Number(cost.wallSeconds.toFixed(2)),
      peakRssMiB: Math.round(cost.maxRssBytes / 1024 ** 2),
      resources: cost.resources,
      steps: plan.steps.length,
      longestChain: chain.length,
      deployParallel,
      modeledMinutes: Number((atDeploy.seconds / 60).toFixed(1)),
      modeledMinutesAtEngineDefault2Cpu: Number((atDefault.seconds / 60).toFixed(1)),
      modeledMinutesUnbounded: Number((simulate(plan, durations, Infinity).seconds / 60).toFixed(1)),
      peakOperations: atDeploy.peakOperations,
      maxSessionsOnAControlPlane: max("control-plane"),
      maxSessionsOnTheJumpHost: max("loadbalancer"),
      maxSessionsOnAWorker: max("worker"),
    });
    console.error(`measured ${label}`);
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
  const growth = (hundred.modeledMinutes as number) / (smallest.modeledMinutes as number) - 1;
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
      "modeled 3 CP + 100 W vs 3 CP + 2 W, at deployParallel",
      `${(growth * 100).toFixed(1)} %`,
      `within ${GOALS.modeledWorkerGrowth * 100} %`,
      Math.abs(growth) <= GOALS.modeledWorkerGrowth,
    ],
    [
      "5 CP + 300 W: most bootstrap SSH sessions on one control plane",
      String(largest.maxSessionsOnAControlPlane),
      `<= ${GOALS.controlPlaneSessions}`,
      (largest.maxSessionsOnAControlPlane as number) <= GOALS.controlPlaneSessions,
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
    "deployParallel",
    "min to Ready at deployParallel",
    "min at engine default (2 vCPU)",
    "max sessions: control plane / jump host / worker",
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
            r.deployParallel,
            r.modeledMinutes,
            r.modeledMinutesAtEngineDefault2Cpu,
            `${r.maxSessionsOnAControlPlane} / ${r.maxSessionsOnTheJumpHost} / ${r.maxSessionsOnAWorker}`,
          ] as (string | number)[],
      ),
    ]),
  );
  console.log("\nmost bootstrap SSH sessions open at once per machine, 5 CP + 300 W (top 8):");
  console.log(
    table([
      ["machine", "sessions"],
      ...Object.entries(sessionPeaks["5 CP + 300 W"])
        .slice(0, 8)
        .map(([m, n]) => [m, n]),
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
    sessionsAt5Cp300W: sessionPeaks["5 CP + 300 W"],
    footprints,
    goals: goals.map(([goal, measured, target, met]) => ({ goal, measured, target, met })),
  };
  fs.writeFileSync(path.join(__dirname, "results.json"), `${JSON.stringify(out, null, 2)}\n`);
  if (goals.some(([, , , ok]) => !ok)) process.exitCode = 1;
}

main();
