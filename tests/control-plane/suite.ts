// Shared setup of the control-plane test files: one control plane per file, started before its
// tests and stopped after them, whatever happened; stopping it must leave no process running.

import * as fs from "fs";
import { ControlPlane, startControlPlane } from "./cluster";
import { runOk } from "./exec";

/** Generous: the first start builds nothing (run.sh did), but a slow machine may need a minute. */
const START_TIMEOUT_MS = 5 * 60_000;

export function useControlPlane(): () => ControlPlane {
  let cp: ControlPlane | undefined;
  beforeAll(async () => {
    cp = await startControlPlane();
  }, START_TIMEOUT_MS);
  afterAll(async () => {
    if (!cp) return;
    await cp.stop();
    const left = cp.processes().filter((p) => p.running);
    if (left.length > 0) throw new Error(`still running after stop: ${left.map((p) => p.name).join(", ")}`);
  }, 120_000);
  return () => {
    if (!cp) throw new Error("the control plane did not start (see beforeAll)");
    return cp;
  };
}

/** Every file under a directory with its content hash, to show a command changed nothing there. */
export async function fingerprint(dir: string): Promise<string> {
  if (!fs.existsSync(dir)) return "(absent)";
  return runOk("bash", ["-c", 'cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum', "-", dir]);
}

/** The host's own kubeadm and kubelet directories: no test may create or change them. */
export const HOST_PATHS = ["/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd"];
