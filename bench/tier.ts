// npm run bench:tier: measures the real-cluster tier against its budgets (issue 19): the tier's
// wall time warm (artifacts cached), the machine's peak memory while it runs, and how busy the CPU
// was, so that a slow run can be told apart from a saturated machine. Runs `npm run test:cluster`
// and `npm run test:cluster-upgrade` (or one of them: `npm run bench:tier -- cluster`) as CI runs
// them, samples /proc every second, and writes bench/out/tier.json; with root and Debian's `acct`
// (accton, sa), it also records where the CPU went, by command (BSD process accounting sees the
// lab machines' processes too: the kernel charges every exit to the accounting file of its own
// PID namespace and of each ancestor's, kernel/acct.c, slow_acct_process walks ns->parent).
// Not a test: it reports against the budgets; its exit code says only whether the suites passed
// (no verdict is printed for a run whose suites failed: its times would mean nothing).

import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export const TIER_WARM_BUDGET_SECONDS = 600;
export const PEAK_MEMORY_BUDGET_BYTES = 8e9;

/**
 * Jiffies from /proc/stat's first line: user nice system idle iowait irq softirq steal (guest and
 * guest_nice are already inside user and nice, proc(5), so they are not added again). Busy is this
 * machine's own work (user, nice, system, irq, softirq); steal, time the hypervisor gave to others,
 * is kept apart so that a shared host does not pass for a busy one. Pure.
 */
export function cpuTicks(procStat: string): { busy: number; steal: number; total: number } {
  const fields = procStat.split("\n")[0].trim().split(/\s+/);
  if (fields[0] !== "cpu") throw new Error(`not /proc/stat: ${fields[0]}`);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = [...fields.slice(1, 9).map(Number), 0, 0, 0, 0];
  const busy = user + nice + system + irq + softirq;
  return { busy, steal, total: busy + idle + iowait + steal };
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

/** `sa -a`'s default columns (`count re cp avio k command`; re and cp in minutes), the top n by CPU. Pure. */
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
  /** CPU-seconds busy (this machine's own work), stolen by the hypervisor, and in all (CPUs x wall). */
  readonly cpuBusySeconds: number;
  readonly cpuStealSeconds: number;
  readonly cpuTotalSeconds: number;
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
    `CPU busy while it ran: ${Math.round(report.cpuBusyShare * 100)} % of ${report.cpus} CPUs ` +
      `(${Math.round(report.cpuBusySeconds)} of ${Math.round(report.cpuTotalSeconds)} CPU-seconds; ` +
      `stolen by the hypervisor: ${Math.round(report.cpuStealSeconds)})`,
  ];
}

type Suite = "cluster" | "upgrade";

/** The suite running now, so that a signal can stop it (its process group: npm, run.sh, jest). */
let running: ReturnType<typeof spawn> | undefined;

function runSuite(suite: Suite, logFile: string): Promise<SuiteRun> {
  const started = Date.now();
  const args = suite === "upgrade" ? ["run", "test:cluster-upgrade"] : ["run", "test:cluster"];
  return new Promise((resolve, reject) => {
    // CI=true: the tier fails rather than skips when a tool is missing, as in CI. Its own group, so
    // that an interrupt reaches run.sh, whose traps remove the lab.
    const child = spawn("npm", args, {
      env: { ...process.env, CI: "true" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    running = child;
    // Each stream decoded as text on its own (a chunk may end inside a multi-byte ✓), so that its
    // lines are whole when parsed; jest writes its report to stderr.
    const text = { stdout: "", stderr: "" };
    for (const name of ["stdout", "stderr"] as const) {
      child[name].setEncoding("utf8");
      child[name].on("data", (chunk: string) => {
        text[name] += chunk;
        fs.appendFileSync(logFile, chunk);
      });
    }
    child.on("error", reject);
    child.on("close", (code) => {
      running = undefined;
      resolve({
        suite,
        exitCode: code ?? 1,
        seconds: (Date.now() - started) / 1000,
        artifactSeconds: artifactSeconds(text.stderr) ?? artifactSeconds(text.stdout),
        tests: [...jestTests(text.stderr), ...jestTests(text.stdout)],
      });
    });
  });
}

function succeeds(command: string, args: readonly string[]): boolean {
  return spawnSync(command, args, { stdio: "ignore" }).status === 0;
}

async function main(): Promise<void> {
  const wanted = process.argv[2];
  if (wanted !== undefined && wanted !== "cluster" && wanted !== "upgrade") {
    console.error(`bench:tier: unknown suite "${wanted}"; allowed: cluster, upgrade (none: both)`);
    process.exit(2);
  }
  const suites: Suite[] = wanted ? [wanted] : ["cluster", "upgrade"];
  const outDir = path.join(__dirname, "out");
  fs.mkdirSync(outDir, { recursive: true });
  const logFile = path.join(outDir, "tier.log");
  fs.writeFileSync(logFile, "");

  // Process accounting is system-wide: the run takes it over and gives it back as it found it
  // (Debian's acct service, when active, accounts to its own file: `accton on` restores that).
  const accountingFile = path.join(outDir, "tier.pacct");
  let accounting = process.getuid?.() === 0 && succeeds("sh", ["-c", "command -v accton && command -v sa"]);
  const systemAccounting = accounting && succeeds("systemctl", ["is-active", "--quiet", "acct"]);
  if (accounting) {
    fs.writeFileSync(accountingFile, "");
    accounting = succeeds("accton", [accountingFile]);
    if (!accounting) console.log(`bench:tier: accton ${accountingFile} failed: no CPU by command`);
  } else {
    console.log("bench:tier: no CPU by command (needs root and Debian's acct package: accton, sa)");
  }
  const restoreAccounting = () => {
    if (accounting) spawnSync("accton", [systemAccounting ? "on" : "off"], { stdio: "ignore" });
    accounting = false;
  };
  let interrupted: NodeJS.Signals | undefined;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      interrupted = signal;
      if (running?.pid) process.kill(-running.pid, signal);
    });
  }

  const read = (file: string) => fs.readFileSync(file, "utf8");
  const baselineMemoryBytes = memoryInUse(read("/proc/meminfo"));
  const cpuStart = cpuTicks(read("/proc/stat"));
  const started = Date.now();
  let peakMemoryBytes = baselineMemoryBytes;
  const sampler = setInterval(() => {
    peakMemoryBytes = Math.max(peakMemoryBytes, memoryInUse(read("/proc/meminfo")));
  }, 1000);
  const runs: SuiteRun[] = [];
  let cpuByCommand: CommandCpu[] | undefined;
  try {
    for (const suite of suites) {
      if (interrupted) break;
      console.log(`bench:tier: running the ${suite} suite (output in ${path.relative(process.cwd(), logFile)})`);
      runs.push(await runSuite(suite, logFile));
    }
  } finally {
    clearInterval(sampler);
    const accounted = accounting;
    restoreAccounting();
    if (accounted) cpuByCommand = accountedCpu(spawnSync("sa", ["-a", accountingFile], { encoding: "utf8" }).stdout);
  }
  if (interrupted) {
    console.error(`bench:tier: interrupted (${interrupted}); nothing recorded`);
    process.exit(interrupted === "SIGINT" ? 130 : 143);
  }
  const cpuEnd = cpuTicks(read("/proc/stat"));
  // /proc/stat counts in USER_HZ ticks (100 on Linux, as getconf CLK_TCK says).
  const hz = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
  const cpus = os.cpus().length;
  const report: TierReport = {
    recordedAt: new Date().toISOString(),
    host: `${cpus} x ${os.cpus()[0]?.model ?? "unknown CPU"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    cpus,
    suites: runs,
    warmSeconds: runs.reduce((sum, r) => sum + r.seconds - (r.artifactSeconds ?? 0), 0),
    baselineMemoryBytes,
    peakMemoryBytes,
    cpuBusySeconds: (cpuEnd.busy - cpuStart.busy) / hz,
    cpuStealSeconds: (cpuEnd.steal - cpuStart.steal) / hz,
    cpuTotalSeconds: (cpuEnd.total - cpuStart.total) / hz,
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
  console.log(`wall: ${Math.round((Date.now() - started) / 1000)} s`);
  const failed = runs.filter((r) => r.exitCode !== 0).map((r) => r.suite);
  if (failed.length > 0) {
    console.log(`no verdict: the ${failed.join(" and ")} suite failed (see ${logFile})`);
    process.exitCode = 1;
    return;
  }
  for (const line of verdict(report)) console.log(line);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
