// cloud-config every VM boots with (GCE metadata "user-data", read by Ubuntu's cloud-init). Pure.
//
// Each bootstrap step is its own SSH connection, and Pulumi runs them all in parallel: at 300
// workers the jump host relays 300+ connections at once and the first control plane receives one
// per worker (membership steps). sshd's default MaxStartups 10:30:100 starts refusing
// unauthenticated connections beyond 10, which turns into dial retries and slow, flaky bootstraps,
// so every machine raises it. `npm run test:artifacts` checks the result with cloud-init's schema
// and `sshd -t`.
//
// pulumi-command never closes its SSH clients: remote/commandOutputs.go closes the session only,
// not the ssh.Client nor, through a jump host, the proxy client (connection.go Dial), so each remote
// step leaves a connection on its machine and one on the jump host until the provider exits.
// sshd's UnusedConnectionTimeout (OpenSSH >= 9.2) closes a connection that has no open channel:
// the target's once the step's session has closed, then the jump host's once its forwarding
// channel has closed with the target's connection (measured with a real sshd and x/crypto's
// client: 5 s and 11 s for a timeout of 5 s; tests/scripts/session.bats). The timer starts at
// authentication, before the first channel: connection.go opens its channel right away, but its
// "Dial from proxy" retries (about 1 minute for DIAL's 20 errors) and a connect that is dropped
// rather than refused (about 2 minutes of SYN retries) run without an open channel, hence 5
// minutes. The keyword is OpenSSH 9.2's (Debian 12's sshd -t accepts it, checked here); which OpenSSH
// the Ubuntu image ships was not checked, and an older sshd refuses it and would not start with it, so the drop-in is installed only when `sshd -t` accepts it on the machine (any image).

import { stringify } from "yaml";

export const SSHD_DROP_IN_PATH = "/etc/ssh/sshd_config.d/60-ha-k8s.conf";
export const SSHD_DROP_IN = ["# Rendered by ha-k8s (render/cloudinit.ts).", "MaxStartups 200:30:1000", ""].join("\n");
/** Seconds sshd keeps a connection without any open channel (UnusedConnectionTimeout). */
export const UNUSED_CONNECTION_TIMEOUT_SECONDS = 300;
/** Written outside sshd_config.d; copied in only when the machine's sshd accepts it. */
export const SSHD_UNUSED_CANDIDATE_PATH = "/etc/ssh/ha-k8s-unused-connection.conf";
export const SSHD_UNUSED_DROP_IN_PATH = "/etc/ssh/sshd_config.d/61-ha-k8s-unused-connection.conf";
export const SSHD_UNUSED_DROP_IN = [
  "# Rendered by ha-k8s (render/cloudinit.ts): close connections left without channels (OpenSSH >= 9.2).",
  `UnusedConnectionTimeout ${UNUSED_CONNECTION_TIMEOUT_SECONDS}`,
  "",
].join("\n");
/** Installs the candidate drop-in, and takes it out again when this sshd refuses the configuration. */
export const SSHD_UNUSED_INSTALL =
  `install -m 0644 ${SSHD_UNUSED_CANDIDATE_PATH} ${SSHD_UNUSED_DROP_IN_PATH} && ` +
  `{ /usr/sbin/sshd -t || { rm -f ${SSHD_UNUSED_DROP_IN_PATH}; ` +
  `echo "ha-k8s: this sshd refuses UnusedConnectionTimeout; idle connections stay open" >&2; }; }`;

export function renderCloudConfig(): string {
  const config = {
    write_files: [
      { path: SSHD_DROP_IN_PATH, permissions: "0644", owner: "root:root", content: SSHD_DROP_IN },
      { path: SSHD_UNUSED_CANDIDATE_PATH, permissions: "0644", owner: "root:root", content: SSHD_UNUSED_DROP_IN },
    ],
    runcmd: [
      ["sh", "-c", SSHD_UNUSED_INSTALL],
      // Ubuntu names the unit ssh; sshd reads the drop-in directory on reload.
      ["systemctl", "reload-or-restart", "ssh"],
    ],
  };
  return `#cloud-config\n${stringify(config, { lineWidth: 0 })}`;
}
