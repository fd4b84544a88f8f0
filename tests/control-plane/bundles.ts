// Runs the rendered bundles on a test machine: with bash, as `sudo bash -s` runs them over SSH, with
// the machine's directory as HA_K8S_ROOT (the scripts' path prefix) and, first on PATH, the real
// kubectl, the kubeadm wrapper and the stubs of what needs a real machine (tests/control-plane/stubs:
// crictl into the etcd container, systemctl, sudo, and Debian's packages: apt-get, apt-mark and
// dpkg-query over a package list, curl and gpg for repository keys). Everything else is the real thing.

import * as fs from "fs";
import * as path from "path";
import type { ControlPlane } from "./cluster";
import { RunResult, run } from "./exec";
import { RenderedStep, TestStack } from "./stack";

const STUBS = path.join(__dirname, "stubs");
const MACHINE_VIEW = path.join(__dirname, "machine-view.sh");

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
  /** More of the machine's environment, e.g. HA_K8S_TEST_KUBEADMS for the kubeadm wrapper. */
  readonly env?: NodeJS.ProcessEnv;
  /** The render the step comes from (e.g. one planning an upgrade); default the cluster's own. */
  readonly stack?: TestStack;
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
    HA_K8S_TEST_NODE: machineName,
    HA_K8S_TEST_NODE_IP: machine.node.internalIp,
    HA_K8S_TEST_MACHINE_VIEW: MACHINE_VIEW,
    HA_K8S_TEST_KUBEADM: cp.binaries.kubeadm,
    HA_K8S_TEST_ETCDCTL: cp.binaries.etcdctl,
    HA_K8S_TEST_ETCD_ENDPOINT: member?.clientUrl ?? "",
    TMPDIR: tmp,
    ...options.env,
  };
}

/** The apt-get stub's package list of a machine (stubs/apt-get): "<package> <version>" lines. */
export function packagesFile(cp: ControlPlane, machineName: string): string {
  return path.join(cp.machine(machineName).root, "var/lib/ha-k8s-test/packages");
}

/** The Debian packages installed on the machine, as prepare-node.sh left them (the stubs' list). */
export function installPackages(cp: ControlPlane, machineName: string, packages: Record<string, string>): void {
  const file = packagesFile(cp, machineName);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    Object.entries(packages)
      .map(([name, version]) => `${name} ${version}\n`)
      .join(""),
  );
}

/** The machine's installed packages and their versions. */
export function installedPackages(cp: ControlPlane, machineName: string): Record<string, string> {
  const lines = fs.readFileSync(packagesFile(cp, machineName), "utf8").trim().split("\n");
  return Object.fromEntries(lines.map((line) => line.split(" ") as [string, string]));
}

/** Runs a step's bundle on the machine the plan runs it on. */
export function runStep(cp: ControlPlane, step: RenderedStep, options: MachineRunOptions = {}): Promise<RunResult> {
  return run("bash", ["-s"], {
    input: fs.readFileSync((options.stack ?? cp.stack).bundle(step), "utf8"),
    env: machineEnv(cp, step.node, options),
    timeoutMs: options.timeoutMs ?? 300_000,
  });
}

/** Runs a step's stored delete command as Pulumi does (it stages in a temporary directory). */
export function runDeleteCommand(
  cp: ControlPlane,
  step: RenderedStep,
  options: MachineRunOptions = {},
): Promise<RunResult> {
  if (!step.onDelete) throw new Error(`${step.id} has no delete command`);
  return run("bash", ["-c", step.onDelete], {
    env: machineEnv(cp, step.node, options),
    timeoutMs: options.timeoutMs ?? 330_000,
  });
}

/**
 * Runs a program as on the machine, for programs with fixed paths and no root prefix (kubeadm): its
 * /etc/kubernetes and /var/lib/kubelet are the machine's and the host name is the node's, in private
 * mount and UTS namespaces (machine-view.sh); the host's own directories stay untouched.
 */
export function runOnMachine(
  cp: ControlPlane,
  machineName: string,
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return run(MACHINE_VIEW, [cp.machine(machineName).root, machineName, command, ...args], {
    env: { ...process.env, ...options.env },
    timeoutMs: options.timeoutMs,
  });
}
