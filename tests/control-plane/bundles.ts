// Runs the rendered bundles on a test machine: with bash, as `sudo bash -s` runs them over SSH, with
// the machine's directory as HA_K8S_ROOT (the scripts' path prefix) and, first on PATH, the real
// kubectl, the kubeadm wrapper and the stubs of what needs a real machine (tests/control-plane/stubs:
// crictl into the etcd container, systemctl, sudo). Everything else is the real thing.

import * as fs from "fs";
import * as path from "path";
import type { ControlPlane } from "./cluster";
import { RunResult, run } from "./exec";
import { RenderedStep } from "./stack";

const STUBS = path.join(__dirname, "stubs");

function binDir(cp: ControlPlane): string {
  const dir = path.join(cp.dir, "bin");
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir);
    fs.symlinkSync(cp.binaries.kubectl, path.join(dir, "kubectl"));
    for (const stub of fs.readdirSync(STUBS)) fs.symlinkSync(path.join(STUBS, stub), path.join(dir, stub));
  }
  return dir;
}

export interface MachineRunOptions {
  /** HA_K8S_SLEEP, the scripts' poll interval in seconds. Default 1. */
  readonly sleepSeconds?: number;
  readonly timeoutMs?: number;
}

/** The environment of a command on that machine. */
export function machineEnv(cp: ControlPlane, machineName: string, options: MachineRunOptions = {}): NodeJS.ProcessEnv {
  const machine = cp.machine(machineName);
  const member = cp.etcd.find((e) => e.name === machineName);
  const tmp = path.join(machine.root, "tmp");
  fs.mkdirSync(tmp, { recursive: true });
  return {
    ...process.env,
    PATH: `${binDir(cp)}:${process.env.PATH}`,
    HA_K8S_ROOT: machine.root,
    HA_K8S_SLEEP: String(options.sleepSeconds ?? 1),
    HA_K8S_TEST_KUBEADM: cp.binaries.kubeadm,
    HA_K8S_TEST_ETCDCTL: cp.binaries.etcdctl,
    HA_K8S_TEST_ETCD_ENDPOINT: member?.clientUrl ?? "",
    TMPDIR: tmp,
  };
}

/** Runs a step's bundle on the machine the plan runs it on. */
export function runStep(cp: ControlPlane, step: RenderedStep, options: MachineRunOptions = {}): Promise<RunResult> {
  return run("bash", ["-s"], {
    input: fs.readFileSync(cp.stack.bundle(step), "utf8"),
    env: machineEnv(cp, step.node, options),
    timeoutMs: options.timeoutMs ?? 300_000,
  });
}

/** Runs a step's stored delete command as Pulumi does (its stage under the machine's root). */
export function runDeleteCommand(
  cp: ControlPlane,
  step: RenderedStep,
  options: MachineRunOptions = {},
): Promise<RunResult> {
  if (!step.onDelete) throw new Error(`${step.id} has no delete command`);
  const command = step.onDelete.split("/var/lib/ha-k8s/").join(`${cp.machine(step.node).root}/var/lib/ha-k8s/`);
  return run("bash", ["-c", command], {
    env: machineEnv(cp, step.node, options),
    timeoutMs: options.timeoutMs ?? 330_000,
  });
}
