// Running commands for the control-plane tests: asynchronously (the fake kubelets' heartbeats
// must keep running while a script waits), bounded in time, each in its own process group so a
// timeout ends everything it started, and with every known secret redacted from what they print
// before any of it can reach a log or an assertion message.

import { spawn } from "child_process";
import { sleep } from "../tools";

const secrets = new Set<string>();

/** A value that must never be printed: every output is redacted of it from now on. */
export function registerSecret(value: string): void {
  if (value.length >= 8) secrets.add(value);
}

export function redact(text: string): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join("<redacted>");
  return out;
}

/** True when the text contains a registered secret verbatim. */
export function containsSecret(text: string): boolean {
  return [...secrets].some((secret) => text.includes(secret));
}

export interface RunResult {
  readonly code: number | null;
  /** stdout, redacted. */
  readonly stdout: string;
  /** stdout and stderr interleaved as they arrived, redacted. */
  readonly output: string;
  /** True when the raw output carried a registered secret (scripts must redact their own). */
  readonly leakedSecret: boolean;
  readonly timedOut: boolean;
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string;
  readonly cwd?: string;
  /** Kills the command's whole process group after this long. Default 2 minutes. */
  readonly timeoutMs?: number;
}

export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let output = "";
    let timedOut = false;
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, "SIGKILL");
    }, options.timeoutMs ?? 120_000);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout: redact(stdout),
        output: redact(output),
        leakedSecret: containsSecret(output),
        timedOut,
      });
    });
    // A command that exits without reading its input (openssl) closes the pipe: not an error.
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}

/** Like run, but a non-zero exit is an error carrying the (redacted) output. */
export async function runOk(command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    const shown = args.map((a) => redact(a)).join(" ");
    throw new Error(
      `${command} ${shown} exited ${result.code}${result.timedOut ? " (timed out)" : ""}:\n${result.output}`,
    );
  }
  return result.stdout;
}

export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export { sleep };

/** Polls until the condition holds; the error names what was awaited and the last reason. */
export async function waitFor(
  what: string,
  condition: () => Promise<boolean | string>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<void> {
  const started = Date.now();
  let last = "";
  for (;;) {
    const outcome = await condition().catch((error: Error) => error.message);
    if (outcome === true) return;
    if (typeof outcome === "string") last = outcome;
    if (Date.now() - started > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${redact(last)}` : ""}`);
    }
    await sleep(intervalMs);
  }
}
