// Long-running processes of the test control plane (etcd members, kube-apiserver,
// kube-controller-manager, HAProxy): each in its own process group with its log in a file, stopped
// with SIGTERM and then SIGKILL. The runner (run.sh) also puts the whole test in a PID namespace,
// so the kernel ends anything still alive when the test process exits, however it exits.

import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import { killGroup } from "./exec";

export class Daemon {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private exitCode: number | null = null;

  constructor(
    readonly name: string,
    readonly command: string,
    readonly logFile: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(args: readonly string[]): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const log = fs.openSync(this.logFile, "a");
    const child = spawn(this.command, args, { detached: true, stdio: ["ignore", log, log] });
    fs.closeSync(log);
    this.child = child;
    this.exitCode = null;
    this.exited = new Promise((resolve) => {
      child.on("exit", (code) => {
        this.exitCode = code;
        resolve();
      });
      child.on("error", () => resolve());
    });
  }

  /** The last lines of its log, for an error message. */
  logTail(lines = 30): string {
    if (!fs.existsSync(this.logFile)) return "(no log)";
    return fs.readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  }

  /** Throws with the log tail when the process has died. */
  assertRunning(): void {
    if (!this.running) {
      throw new Error(`${this.name} exited (code ${this.exitCode}); last log lines:\n${this.logTail()}`);
    }
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (!this.child || !this.running) return;
    const pid = this.child.pid;
    killGroup(pid, "SIGTERM");
    const forceKill = setTimeout(() => killGroup(pid, "SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(forceKill);
  }
}
