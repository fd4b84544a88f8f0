// npm run lab -- up | down | status: the test stack (3 control planes, 2 workers, 1 HAProxy VM) on
// this machine, deployed by the same engine as the real-cluster tier, left running for people to
// try the project without a Google Cloud account. Linux and root only.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { SSH_USER } from "../../../render/names";
import { SUPPORTED_KUBERNETES, DEFAULT_KUBERNETES_MINOR } from "../../../render/versions";
import { LabCluster } from "./cluster";
import { KEPT_MARKER, LAB_PREFIX, LAB_ROOT, leftovers, removeAbandonedLabs } from "./lab";

function keptLabs(): string[] {
  if (!fs.existsSync(LAB_ROOT)) return [];
  return fs
    .readdirSync(LAB_ROOT)
    .filter((n) => n.startsWith(LAB_PREFIX) && fs.existsSync(path.join(LAB_ROOT, n, KEPT_MARKER)));
}

function artifacts(): string {
  const patch = SUPPORTED_KUBERNETES[DEFAULT_KUBERNETES_MINOR].patch;
  const built = spawnSync("bash", [path.join(__dirname, "artifacts.sh"), patch], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (built.status !== 0) throw new Error("building the lab's binaries, images and packages failed (see above)");
  return built.stdout.trim();
}

async function up(): Promise<number> {
  const running = keptLabs();
  if (running.length > 0) {
    console.log(
      `a lab is running already (${running.join(", ")}): npm run lab -- status, or npm run lab -- down first`,
    );
    return 1;
  }
  const started = Date.now();
  const cluster = await LabCluster.create({ artifacts: artifacts(), log: (line) => console.log(line) });
  cluster.keep();
  const result = await cluster.up();
  if (!result.ok) {
    console.error(
      `\nthe deployment failed: ${result.failure}\nthe lab stays up to look at it (npm run lab -- status); npm run lab -- down removes it`,
    );
    writeStatus(cluster);
    return 1;
  }
  const kubeconfig = path.join(cluster.lab.dir, "kubeconfig");
  fs.writeFileSync(kubeconfig, cluster.kubeconfig(), { mode: 0o600 });
  writeStatus(cluster);
  console.log(`\nthe cluster is up (${Math.round((Date.now() - started) / 1000)} s).\n`);
  console.log(fs.readFileSync(path.join(cluster.lab.dir, "status.txt"), "utf8"));
  return 0;
}

/** How to use the lab: kubectl through the external address, SSH through the jump host. */
function writeStatus(cluster: LabCluster): void {
  const { lab, secrets, stack } = cluster;
  const deployer = `ip netns exec ${lab.name}-deployer`;
  const key = path.join(lab.dir, "secrets", "ssh-key");
  const jump = `${SSH_USER}@${secrets.values.externalIp}`;
  // Every lab's machines get new host keys at the same addresses: an ssh configuration of the lab's
  // own (ssh hands -F to the -J hop too) keeps them out of the user's known_hosts.
  const sshConfig = path.join(lab.dir, "ssh_config");
  fs.writeFileSync(
    sshConfig,
    `Host *\n  IdentityFile ${key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${path.join(lab.dir, "known_hosts")}\n` +
      "  StrictHostKeyChecking accept-new\n",
  );
  const lines = [
    `lab ${lab.name}: the ${stack.config.clusterName} stack, Kubernetes ${stack.plan.cluster.kubernetesPatch}, on this machine (as root)`,
    "",
    "the API, as an operator reaches it (the stack's kubeconfig output, at the external address):",
    `  ${deployer} kubectl --kubeconfig ${path.join(lab.dir, "kubeconfig")} get nodes -o wide`,
    "",
    "the machines, over SSH through the jump host (the HAProxy VM):",
    ...stack.plan.nodes.map((n) =>
      n.role === "loadbalancer"
        ? `  ${n.name.padEnd(24)} ${deployer} ssh -F ${sshConfig} ${jump}`
        : `  ${n.name.padEnd(24)} ${deployer} ssh -F ${sshConfig} -J ${jump} ${SSH_USER}@${n.internalIp}`,
    ),
    "",
    "or as root inside a machine: nsenter -t <PID 1> -a (npm run lab -- status lists them)",
    "remove everything: npm run lab -- down",
  ];
  fs.writeFileSync(path.join(lab.dir, "status.txt"), `${lines.join("\n")}\n`);
}

async function down(): Promise<number> {
  const labs = keptLabs();
  await removeAbandonedLabs((line) => console.log(line), true);
  const left = labs.flatMap((name) => leftovers(name));
  if (left.length > 0) {
    console.error(`left behind:\n  ${left.join("\n  ")}`);
    return 1;
  }
  console.log(labs.length > 0 ? `removed ${labs.join(", ")}; nothing is left` : "no lab is running");
  return 0;
}

function status(): number {
  const labs = keptLabs();
  if (labs.length === 0) {
    console.log("no lab is running (npm run lab -- up starts one)");
    return 0;
  }
  for (const name of labs) {
    const file = path.join(LAB_ROOT, name, "status.txt");
    console.log(fs.existsSync(file) ? fs.readFileSync(file, "utf8") : `lab ${name}: starting`);
  }
  return 0;
}

async function main(): Promise<number> {
  const command = process.argv[2];
  if (process.platform !== "linux" || process.getuid?.() !== 0) {
    console.error("npm run lab needs Linux and root (it makes namespaces, cgroups and mounts): run it as root");
    return 1;
  }
  switch (command) {
    case "up":
      return up();
    case "down":
      return down();
    case "status":
      return status();
    default:
      console.error("usage: npm run lab -- up | down | status");
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(error.message);
    process.exit(1);
  },
);
