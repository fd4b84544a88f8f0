// The kubeconfig handed to operators: kubeadm's admin.conf (never super-admin.conf, which bypasses
// RBAC since 1.29) with its server pointed at the load balancer's external address, which the API
// server certificate lists in its SANs. Pure.

import { SEALED_OUTPUT_PREFIX, openSealedOutput } from "./secrets";

/**
 * admin.conf from the kubeconfig step's stdout: sealed (scripts/kubeconfig.sh), or in clear when the
 * stack's state still holds the output of a run from before outputs were sealed (the step's inputs
 * changed with that release, so the next `pulumi up` runs it again and seals it).
 */
export function adminConfFromStepOutput(stdout: string, outputKey: string): string {
  return stdout.trimStart().startsWith(SEALED_OUTPUT_PREFIX) ? openSealedOutput(stdout, outputKey) : stdout;
}

export function publicKubeconfig(adminConf: string, externalIp: string, port: number): string {
  const lines = adminConf.split("\n");
  let replaced = 0;
  const out = lines.map((line) => {
    const match = /^(\s*server:\s*)https:\/\/\S+$/.exec(line);
    if (!match) return line;
    replaced++;
    return `${match[1]}https://${externalIp}:${port}`;
  });
  if (replaced !== 1) throw new Error(`admin.conf should name exactly one server, found ${replaced}`);
  return out.join("\n");
}
