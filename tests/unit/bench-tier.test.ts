// bench/tier.ts's readings: /proc/stat and /proc/meminfo as Linux writes them, jest's default
// reporter's lines and Debian acct's `sa -a` output as captured on this machine.

import * as fs from "fs";
import {
  PEAK_MEMORY_BUDGET_BYTES,
  TierReport,
  accountedCpu,
  artifactSeconds,
  cpuTicks,
  jestTests,
  memoryInUse,
  verdict,
} from "../../bench/tier";

describe("bench:tier readings", () => {
  test("CPU: busy is user, nice, system, irq and softirq; steal apart; guest time not counted twice", () => {
    // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user already)
    expect(cpuTicks("cpu  100 5 50 800 40 3 5 70 30 2\ncpu0 1 2 3 4 5 6 7 8 9 10\n")).toEqual({
      busy: 163,
      steal: 70,
      total: 1073,
    });
    // Older kernels print fewer columns.
    expect(cpuTicks("cpu  100 5 50 800\n")).toEqual({ busy: 155, steal: 0, total: 955 });
    expect(() => cpuTicks("intr 1 2 3")).toThrow(/not \/proc\/stat/);
  });

  (fs.existsSync("/proc/stat") ? test : test.skip)("CPU: this machine's /proc/stat reads, and only grows", () => {
    const first = cpuTicks(fs.readFileSync("/proc/stat", "utf8"));
    const second = cpuTicks(fs.readFileSync("/proc/stat", "utf8"));
    expect(first.busy).toBeGreaterThan(0);
    expect(first.total).toBeGreaterThan(first.busy);
    expect(second.total).toBeGreaterThanOrEqual(first.total);
  });

  test("memory in use: MemTotal less MemAvailable, in bytes", () => {
    const meminfo = "MemTotal:       24683744 kB\nMemFree:        21244480 kB\nMemAvailable:   23793180 kB\n";
    expect(memoryInUse(meminfo)).toBe((24683744 - 23793180) * 1024);
    expect(() => memoryInUse("MemTotal: 1 kB\n")).toThrow(/no MemAvailable/);
  });

  test("jest's lines: names with parentheses, passes and failures, milliseconds to seconds", () => {
    const output = [
      "PASS tests/cluster/cluster.test.ts (522.552 s)",
      "  a real cluster on this machine",
      "    ✓ a fresh deploy: every step runs, every Node Ready (211640 ms)",
      "    ✕ a control plane (cp-2) lost outside Pulumi, rebuilt: it joins (142907 ms)",
      "    08:01:07 the deployment stopped (exit 255)",
      "Time:        522.974 s",
    ].join("\n");
    expect(jestTests(output)).toEqual([
      { name: "a fresh deploy: every step runs, every Node Ready", passed: true, seconds: 211.64 },
      { name: "a control plane (cp-2) lost outside Pulumi, rebuilt: it joins", passed: false, seconds: 142.907 },
    ]);
  });

  test("the artifact step's time, as tests/cluster/run.sh prints it", () => {
    expect(
      artifactSeconds("test:cluster: artifacts for Kubernetes 1.36.3 ready in /root/.cache/ha-k8s/lab/f5a9 (1 s)\n"),
    ).toBe(1);
    expect(artifactSeconds("nothing built")).toBeUndefined();
  });

  test("sa's output: the total line is no command, minutes become seconds, the largest first", () => {
    const sa = [
      "    2325    1057.23re       7.28cp         0avio     37389k",
      "       8      44.64re       1.17cp         0avio    333392k   containerd",
      "       5      21.56re       1.53cp         0avio    394778k   kube-apiserver",
      "       2      12.06re       0.08cp         0avio     24584k   haproxy*",
    ].join("\n");
    expect(accountedCpu(sa, 2)).toEqual([
      { command: "kube-apiserver", processes: 5, cpuSeconds: 1.53 * 60 },
      { command: "containerd", processes: 8, cpuSeconds: 1.17 * 60 },
    ]);
  });

  test("the verdict names each budget and whether the run kept it", () => {
    const report: TierReport = {
      recordedAt: "2026-12-06T00:00:00Z",
      host: "2 x test CPU, 24 GiB",
      cpus: 2,
      suites: [],
      warmSeconds: 1300,
      baselineMemoryBytes: 2 ** 30,
      peakMemoryBytes: PEAK_MEMORY_BUDGET_BYTES + 1,
      cpuBusySeconds: 2483,
      cpuStealSeconds: 0,
      cpuTotalSeconds: 2560,
      cpuBusyShare: 0.97,
    };
    expect(verdict(report)).toEqual([
      "tier warm: 1300 s, budget 600 s: OVER",
      "peak memory in use: 7.45 GiB (machine idle before: 1.00 GiB), budget 7.45 GiB: OVER",
      "CPU busy while it ran: 97 % of 2 CPUs (2483 of 2560 CPU-seconds; stolen by the hypervisor: 0)",
    ]);
    expect(verdict({ ...report, warmSeconds: 600, peakMemoryBytes: 2 ** 32 })[0]).toMatch(/within$/);
    expect(verdict({ ...report, warmSeconds: 600, peakMemoryBytes: 2 ** 32 })[1]).toMatch(/4\.00 GiB .*within$/);
  });
});
