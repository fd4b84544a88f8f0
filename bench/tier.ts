// npm run bench:tier: measures the real-cluster tier against its budgets (issue 19): the tier's
// wall time warm (artifacts cached), the machine's peak memory while it runs, and how busy the CPU
// was, so that a slow run can be told apart from a saturated machine. Runs `npm run test:cluster`
// and `npm run test:cluster-upgrade` (or one of them: `npm run bench:tier -- cluster`) as CI runs
// them, samples /proc every second, and writes bench/out/tier.json; with root and Debian's `acct`
// (accton, sa), it also records where the CPU went, by command (BSD process accounting sees the
// lab machines' processes too: the kernel charges every exit to the accounting file of its own
// PID namespace and of each ancestor's, kernel/acct.c, slow_acct_process walks ns->parent).
// Not a test: it passes or fails nothing; it reports.

import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export const TIER_WARM_BUDGET_SECONDS = 600;
export const PEAK_MEMORY_BUDGET_BYTES = 8e9;

/** Busy and total jiffies from /proc/stat's first line (busy: all but idle and iowait). Pure. */
export function cpuTicks(procStat: string): { busy: number; total: number } {
  const fields = procStat.split("\n")[0].trim().split(/\s+/);
  if (fields[0] !== "cpu") throw new Error(`not /proc/stat: ${fields[0]}`);
  const values = fields.slice(1).map(Number);
  const total = values.reduce((sum, v) => sum + v, 0);
  const idle = values[3] + (values[4] ?? 0);
  return { busy: total - idle, total };
}

/** Memory in use, in bytes: MemTotal less MemAvailable (page cache the kernel can drop is not use). Pure. */
export function memoryInUse(meminfo: string): number {
  const kib = (key: string) => {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(meminfo);
    if (!match) throw new Error(`no ${key} in /proc/meminfo`);
    return Number(match[1]);
  };
  return (kib("MemTotal") - kib("MemAvailable")) * 1024;
}

export interface TestDuration {
  readonly name: string;
  readonly passed: boolean;
  readonly seconds: number;
}

/** The tests jest reported (its default reporter's ✓/✕ lines, with their times), in order. Pure. */
export function jestTests(output: string): TestDuration[] {
  const tests: TestDuration[] = [];
  for (const line of output.split("\n")) {
    const match = /^\s*([✓✕])\s+(.*\S)\s+\((\d+) ms\)\s*$/.exec(line);
    if (match) tests.push({ name: match[2], passed: match[1] === "✓", seconds: Number(match[3]) / 1000 });
  }
  return tests;
}

/** Seconds the tier spent finding or building its artifacts (tests/cluster/run.sh says). Pure. */
export function artifactSeconds(output: string): number | undefined {
  const match = /artifacts for Kubernetes .* ready in \S+ \((\d+) s\)/.exec(output);
  return match ? Number(match[1]) : undefined;
}

export interface CommandCpu {
  readonly command: string;
  readonly processes: number;
  readonly cpuSeconds: number;
}

/** `sa -a -m`-less default output (`count re cp avio k command`; re and cp in minutes), top n by CPU. Pure. */
export function accountedCpu(saOutput: string, n = 12): CommandCpu[] {
  const rows: CommandCpu[] = [];
  for (const line of saOutput.split("\n")) {
    const match = /^\s*(\d+)\s+[\d.]+re\s+([\d.]+)cp\s+\S+avio\s+\S+k\s+(\S.*)$/.exec(line);
    if (match) rows.push({ processes: Number(match[1]), cpuSeconds: Number(match[2]) * 60, command: match[3].trim() });
  }
  return rows.sort((a, b) => b.cpuSeconds - a.cpuSeconds).slice(0, n);
}

export interface SuiteRun {
  readonly suite: string;
  readonly exitCode: number;
  readonly seconds: number;
  readonly artifactSeconds?: number;
  readonly tests: readonly TestDuration[];
}

export interface TierReport {
  readonly recordedAt: string;
  readonly host: string;
  readonly cpus: number;
  readonly suites: readonly SuiteRun[];
  /** Wall time of all suites, less the artifact steps (warm: what a cached run spends). */
  readonly warmSeconds: number;
  readonly baselineMemoryBytes: number;
  readonly peakMemoryBytes: number;
  /** Share of the CPU time that was busy while the suites ran (1: saturated). */
  readonly cpuBusyShare: number;
  readonly cpuByCommand?: readonly CommandCpu[];
}

/** The budget lines the report ends with. Pure. */
export function verdict(report: TierReport): string[] {
  const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(2);
  return [
    `tier warm: ${Math.round(report.warmSeconds)} s, budget ${TIER_WARM_BUDGET_SECONDS} s: ${report.warmSeconds <= TIER_WARM_BUDGET_SECONDS ? "within" : "OVER"}`,
    `peak memory in use: ${gib(report.peakMemoryBytes)} GiB (machine idle before: ${gib(report.baselineMemoryBytes)} GiB), budget ${gib(PEAK_MEMORY_BUDGET_BYTES)} GiB: ${report.peakMemoryBytes < PEAK_MEMORY_BUDGET_BYTES ? "within" : "OVER"}`,
    `CPU busy while it ran: ${Math.round(report.cpuBusyShare * 100)} % of ${report.cpus} CPUs`,
  ];
}

function runSuite(suite: string, logFile: string): Promise<SuiteRun> {
  const started = Date.now();
  const args = suite === "upgrade" ? ["run", "test:cluster-upgrade"] : ["run", "test:cluster"];
  return new Promise((resolve, reject) => {
    // CI=true: the tier fails rather than skips when a tool is missing, as in CI.
    const child = spawn("npm", args, { env: { ...process.env, CI: "true" }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const take = (chunk: Buffer) => {
      output += chunk.toString();
      fs.appendFileSync(logFile, chunk);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        suite,
        exitCode: code ?? 1,
        seconds: (Date.now() - started) / 1000,
        artifactSeconds: artifactSeconds(output),
        tests: jestTests(output),
      }),
    );
  });
}

function hasCommand(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`]).status === 0;
}

async function main(): Promise<void> {
  const wanted = process.argv[2];
  if (wanted !== undefined && wanted !== "cluster" && wanted !== "upgrade") {
    console.error(`bench:tier: unknown suite "${wanted}"; allowed: cluster, upgrade (none: both)`);
    process.exit(2);
  }
  const suites = wanted ? [wanted] : ["cluster", "upgrade"];
  const outDir = path.join(__dirname, "out");
  fs.mkdirSync(outDir, { recursive: true });
  const logFile = path.join(outDir, "tier.log");
  fs.writeFileSync(logFile, "");
  const accountingFile = path.join(outDir, "tier.pacct");
  const accounting = process.getuid?.() === 0 && hasCommand("accton") && hasCommand("sa");
  if (accounting) {
    fs.writeFileSync(accountingFile, "");
    spawnSync("accton", [accountingFile]);
  } else {
    console.log("bench:tier: no CPU by command (needs root and Debian's acct package: accton, sa)");
  }

  const read = (file: string) => fs.readFileSync(file, "utf8");
  const baselineMemoryBytes = memoryInUse(read("/proc/meminfo"));
  const cpuStart = cpuTicks(read("/proc/stat"));
  let peakMemoryBytes = baselineMemoryBytes;
  const sampler = setInterval(() => {
    peakMemoryBytes = Math.max(peakMemoryBytes, memoryInUse(read("/proc/meminfo")));
  }, 1000);
  const runs: SuiteRun[] = [];
  try {
    for (const suite of suites) {
      console.log(`bench:tier: running the ${suite} suite (output in ${path.relative(process.cwd(), logFile)})`);
      runs.push(await runSuite(suite, logFile));
    }
  } finally {
    clearInterval(sampler);
    if (accounting) spawnSync("accton", ["off"]);
  }
  const cpuEnd = cpuTicks(read("/proc/stat"));
  const cpuByCommand = accounting
    ? accountedCpu(spawnSync("sa", ["-a", accountingFile], { encoding: "utf8" }).stdout)
    : undefined;
  const report: TierReport = {
    recordedAt: new Date().toISOString(),
    host: `${os.cpus().length} x ${os.cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    cpus: os.cpus().length,
    suites: runs,
    warmSeconds: runs.reduce((sum, r) => sum + r.seconds - (r.artifactSeconds ?? 0), 0),
    baselineMemoryBytes,
    peakMemoryBytes,
    cpuBusyShare: (cpuEnd.busy - cpuStart.busy) / Math.max(1, cpuEnd.total - cpuStart.total),
    cpuByCommand,
  };
  fs.writeFileSync(path.join(outDir, "tier.json"), JSON.stringify(report, null, 2) + "\n");
  for (const run of runs) {
    console.log(
      `${run.suite}: exit ${run.exitCode}, ${Math.round(run.seconds)} s (artifacts ${run.artifactSeconds ?? "?"} s)`,
    );
    for (const test of run.tests)
      console.log(`  ${test.passed ? "ok  " : "FAIL"} ${Math.round(test.seconds)} s  ${test.name}`);
  }
  if (cpuByCommand) {
    console.log("CPU by command (processes that ended while it ran):");
    for (const row of cpuByCommand) console.log(`  ${Math.round(row.cpuSeconds)} s  ${row.command} (${row.processes})`);
  }
  for (const line of verdict(report)) console.log(line);
  process.exitCode = runs.every((r) => r.exitCode === 0) ? 0 : 1;
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
