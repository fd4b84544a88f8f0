// Tests that need a real program (haproxy, shellcheck, kubeadm...): in CI a missing one is a
// failure; elsewhere the suite is skipped loudly, naming what to install.

import { spawnSync } from "child_process";

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
