// Tests that need a real program (haproxy, shellcheck, kubeadm...): in CI a missing one is a
// failure; elsewhere the suite is skipped loudly, naming what to install.

import { spawnSync } from "child_process";
import * as net from "net";

function findTool(name: string): string | undefined {
  const result = spawnSync("bash", ["-c", `command -v ${name}`], { encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/** The tool's path, or undefined (outside CI only) after a loud warning. */
export function requireTool(name: string, debianPackage: string): string | undefined {
  const found = findTool(name);
  if (found) return found;
  const message = `${name} not found: install the Debian package "${debianPackage}" (tools/setup.sh does it)`;
  if (process.env.CI) throw new Error(`${message}; CI must run this suite`);
  console.warn(`SKIPPING: ${message}`);
  return undefined;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A TCP port free on 127.0.0.1 right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}
