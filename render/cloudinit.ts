// cloud-config every VM boots with (GCE metadata "user-data", read by Ubuntu's cloud-init). Pure.
//
// Each bootstrap step is its own SSH connection, and Pulumi runs them all in parallel: at 300
// workers the jump host relays 300+ connections at once and the first control plane receives one
// per worker (membership steps). sshd's default MaxStartups 10:30:100 starts refusing
// unauthenticated connections beyond 10, which turns into dial retries and slow, flaky bootstraps,
// so every machine raises it. `npm run test:artifacts` checks the result with cloud-init's schema
// and `sshd -t`.

import { stringify } from "yaml";

export const SSHD_DROP_IN_PATH = "/etc/ssh/sshd_config.d/60-ha-k8s.conf";
export const SSHD_DROP_IN = ["# Rendered by ha-k8s (render/cloudinit.ts).", "MaxStartups 200:30:1000", ""].join("\n");

export function renderCloudConfig(): string {
  const config = {
    write_files: [{ path: SSHD_DROP_IN_PATH, permissions: "0644", owner: "root:root", content: SSHD_DROP_IN }],
    // Ubuntu names the unit ssh; sshd reads the drop-in directory on reload.
    runcmd: [["systemctl", "reload-or-restart", "ssh"]],
  };
  return `#cloud-config\n${stringify(config, { lineWidth: 0 })}`;
}
