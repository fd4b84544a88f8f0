// The lab: a plan's machines as Linux namespaces on this host, on a network of their own (net.sh),
// with the mirror the machines install from (the lab's apt repositories and registry, served by
// labtool over HTTPS with a certificate of the lab's own CA), and a deployer namespace where the
// deploying machine's commands run (the login checks, SSH through the jump host).
//
// A machine (machine.sh, boot.sh) has a disk (a directory), an instance id (new for every new
// machine, as a new GCE VM has), and can be powered off (every process killed at once), on again
// (the same disk), or destroyed (its disk gone). Nothing of the lab is reachable from the host's
// network, and stop() leaves no namespace, process, mount, cgroup or interface behind; leftovers()
// says what is left, for the tier to check.

import { ChildProcess, spawn, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { hostAddress, parseCidr } from "../../../render/cidr";
import { scopesFor } from "../../../render/backup";
import { renderCloudConfig } from "../../../render/cloudinit";
import { PlannedNode, SSH_USER } from "../../../render/plan";
import { sleep } from "../../tools";

const HERE = __dirname;
/** Where labs keep their disks; outside every directory a machine overlays (boot.sh). */
export const LAB_ROOT = process.env.HA_K8S_LAB_DIR ?? "/tmp/ha-k8s-lab";
/** Every lab's name starts with this, so leftovers of an interrupted run can be found. */
export const LAB_PREFIX = "hk8s";
/** The mirror (apt repositories, registry): an address outside the subnet, routed by the gateway. */
export const MIRROR_IP = "192.0.2.10";
/** Cloud Storage's API (storage.googleapis.com on the machines) and GCE's metadata server. */
export const STORAGE_IP = "192.0.2.20";
export const METADATA_IP = "169.254.169.254";
/** The bucket fake-gcs-server holds for the stack's snapshots. */
export const LAB_BUCKET = "ha-k8s-lab-etcd-backups";
/** The public side (RFC 5737 TEST-NET-2): the router, and the deployer (where `pulumi up` runs), in
 * another network than the external address, as an operator on the internet is. */
export const PUBLIC_GATEWAY = "198.51.100.1/24";
export const DEPLOYER_IP = "198.51.100.100";

export interface LabMachine {
  readonly node: PlannedNode;
  /** A GCE-like instance id: new for every new machine. */
  readonly instanceId: string;
  readonly disk: string;
  /** The launcher's PID (unshare); undefined while powered off. */
  launcher?: ChildProcess;
}

export interface LabOptions {
  /** The lab's artifacts (tests/cluster/lab/artifacts.sh). */
  readonly artifacts: string;
  /** The plan's subnet, e.g. 10.10.0.0/22: the gateway takes its first address. */
  readonly subnetCidr: string;
  /** The stack's SSH public key (OpenSSH), installed for SSH_USER on every machine. */
  readonly sshPublicKey: string;
  /** The load balancer's external address, translated to `natTo` (GCE's 1:1 NAT). */
  readonly externalIp: string;
  readonly natTo: string;
  /** Extra /etc/hosts lines every machine gets ("<ip> <name>"). */
  readonly hosts?: readonly string[];
  readonly log?: (line: string) => void;
}

function sh(command: string, args: readonly string[], input?: string): string {
  const result = spawnSync(command, args, { encoding: "utf8", input, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${result.status}: ${result.stderr || result.stdout}`);
  }
  return result.stdout;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class Lab {
  readonly name: string;
  readonly dir: string;
  readonly machines = new Map<string, LabMachine>();
  private readonly services: ChildProcess[] = [];
  private nextIndex = 1;
  private readonly indexes = new Map<string, number>();
  readonly gateway: string;
  readonly caCert: string;

  private constructor(
    readonly options: LabOptions,
    name: string,
  ) {
    this.name = name;
    this.dir = path.join(LAB_ROOT, name);
    const parsed = parseCidr(options.subnetCidr);
    if ("error" in parsed) throw new Error(`subnet ${options.subnetCidr}: ${parsed.error}`);
    this.gateway = `${hostAddress(parsed.cidr, 1)}/${parsed.cidr.prefix}`;
    this.caCert = path.join(this.dir, "ca", "ca.crt");
  }

  private log(line: string): void {
    this.options.log?.(`[lab ${this.name}] ${line}`);
  }

  /** Creates the network, the CA and the mirror. */
  static async start(options: LabOptions): Promise<Lab> {
    const lab = new Lab(options, `${LAB_PREFIX}${randomBytes(3).toString("hex")}`);
    fs.mkdirSync(lab.dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(lab.dir, "owner.pid"), String(process.pid));
    try {
      lab.makeCa();
      sh("bash", [path.join(HERE, "net.sh"), "up", lab.name, lab.gateway, MIRROR_IP, PUBLIC_GATEWAY, DEPLOYER_IP]);
      sh("bash", [path.join(HERE, "net.sh"), "nat", lab.name, options.externalIp, options.natTo]);
      await lab.startMirror();
      await lab.startGcp();
    } catch (error) {
      await lab.stop();
      throw error;
    }
    return lab;
  }

  private makeCa(): void {
    const ca = path.dirname(this.caCert);
    fs.mkdirSync(ca, { recursive: true });
    sh("bash", [
      "-c",
      `set -euo pipefail; cd "${ca}"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=ha-k8s lab CA" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${MIRROR_IP}" -keyout mirror.key -out mirror.csr 2>/dev/null
printf 'subjectAltName=IP:${MIRROR_IP}\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
openssl x509 -req -in mirror.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out mirror.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=storage.googleapis.com" -keyout storage.key -out storage.csr 2>/dev/null
printf 'subjectAltName=DNS:storage.googleapis.com\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in storage.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out storage.crt 2>/dev/null`,
    ]);
  }

  /** A process inside one of the lab's network namespaces, ended by stop(). */
  spawnService(namespace: string, argv: readonly string[], logName: string): ChildProcess {
    const out = fs.openSync(path.join(this.dir, `${logName}.log`), "a");
    const child = spawn("bash", [path.join(HERE, "machine.sh"), "service", this.name, namespace, ...argv], {
      stdio: ["ignore", out, out],
      detached: true,
    });
    fs.closeSync(out);
    // The lab outlives a `npm run lab -- up` that started it.
    child.unref();
    this.services.push(child);
    return child;
  }

  private async startMirror(): Promise<void> {
    const ca = path.dirname(this.caCert);
    this.spawnService(
      "router",
      [
        path.join(this.options.artifacts, "labtool"),
        "serve",
        "--listen",
        `${MIRROR_IP}:443`,
        "--cert",
        path.join(ca, "mirror.crt"),
        "--key",
        path.join(ca, "mirror.key"),
        "--images",
        path.join(this.options.artifacts, "images"),
        "--files",
        path.join(this.options.artifacts, "repo"),
        "--log",
        this.mirrorLog,
      ],
      "mirror",
    );
    for (let i = 0; i < 100; i++) {
      const probe = spawnSync(
        "ip",
        ["netns", "exec", `${this.name}-router`, "curl", "-sf", "--cacert", this.caCert, `https://${MIRROR_IP}/v2/`],
        { encoding: "utf8" },
      );
      if (probe.status === 0) return;
      await sleep(100);
    }
    throw new Error(`the lab's mirror did not start (see ${path.join(this.dir, "mirror.log")})`);
  }

  /**
   * GCE's metadata server and Cloud Storage (fake-gcs-server behind a front that checks the
   * metadata server's token), with the stack's bucket.
   */
  private async startGcp(): Promise<void> {
    const ca = path.dirname(this.caCert);
    const router = (argv: string[]) =>
      spawnSync("ip", ["netns", "exec", `${this.name}-router`, ...argv], { encoding: "utf8" });
    sh("ip", ["netns", "exec", `${this.name}-router`, "ip", "addr", "add", `${STORAGE_IP}/32`, "dev", "lo"]);
    sh("ip", ["netns", "exec", `${this.name}-router`, "ip", "addr", "add", `${METADATA_IP}/32`, "dev", "lo"]);
    fs.writeFileSync(this.scopesFile, "{}");
    fs.writeFileSync(this.instancesFile, "{}");
    this.spawnService(
      "router",
      [path.join(this.options.artifacts, "fake-gcs-server"), "-scheme", "http", "-host", "127.0.0.1", "-port", "4443",
        "-backend", "memory", "-public-host", "storage.googleapis.com"],
      "fake-gcs-server",
    ); // prettier-ignore
    this.spawnService(
      "router",
      [path.join(this.options.artifacts, "labtool"), "gcp", "--metadata", `${METADATA_IP}:80`, "--storage", `${STORAGE_IP}:443`,
        "--backend", "http://127.0.0.1:4443", "--cert", path.join(ca, "storage.crt"), "--key", path.join(ca, "storage.key"),
        "--token", this.storageToken, "--scopes", this.scopesFile, "--instances", this.instancesFile, "--log", path.join(this.dir, "gcp-requests.log")],
      "gcp",
    ); // prettier-ignore
    for (let i = 0; i < 100; i++) {
      const bucket = router(["curl", "-sf", "-X", "POST", "-H", "Content-Type: application/json", "-d", JSON.stringify({ name: LAB_BUCKET }), "http://127.0.0.1:4443/storage/v1/b"]); // prettier-ignore
      if (bucket.status === 0) return;
      await sleep(100);
    }
    throw new Error(`the lab's Cloud Storage did not start (see ${path.join(this.dir, "fake-gcs-server.log")})`);
  }

  /** The access token the metadata server hands out and Cloud Storage accepts. */
  readonly storageToken = randomBytes(24).toString("hex");

  private get scopesFile(): string {
    return path.join(this.dir, "scopes.json");
  }

  /** Each machine's instance id by address, for the metadata server's instance/id. */
  private get instancesFile(): string {
    return path.join(this.dir, "instances.json");
  }

  /** The mirror's request log: "<client> <method> <path> <status>" per line. */
  get mirrorLog(): string {
    return path.join(this.dir, "mirror-requests.log");
  }

  /** A new machine for a planned node (a new VM: empty disk, new instance id), powered on. */
  async createMachine(node: PlannedNode): Promise<LabMachine> {
    if (this.machines.has(node.name)) throw new Error(`machine ${node.name} exists already`);
    const disk = path.join(this.dir, "machines", node.name);
    fs.rmSync(disk, { recursive: true, force: true });
    fs.mkdirSync(disk, { recursive: true });
    this.writeSeed(node, path.join(disk, "seed"));
    const machine: LabMachine = { node, instanceId: BigInt(`0x${randomBytes(8).toString("hex")}`).toString(), disk };
    this.machines.set(node.name, machine);
    // The machine's service account scopes, as components/vm.ts gives them, for the metadata server.
    const scopes = JSON.parse(fs.readFileSync(this.scopesFile, "utf8")) as Record<string, string[]>;
    scopes[node.internalIp] = scopesFor(node.role);
    fs.writeFileSync(this.scopesFile, JSON.stringify(scopes));
    const instances = JSON.parse(fs.readFileSync(this.instancesFile, "utf8")) as Record<string, string>;
    instances[node.internalIp] = machine.instanceId;
    fs.writeFileSync(this.instancesFile, JSON.stringify(instances));
    if (!this.indexes.has(node.name)) this.indexes.set(node.name, this.nextIndex++);
    const parsed = parseCidr(this.options.subnetCidr);
    if ("error" in parsed) throw new Error(parsed.error);
    sh("bash", [
      path.join(HERE, "net.sh"),
      "attach",
      this.name,
      node.name,
      String(this.indexes.get(node.name)),
      `${node.internalIp}/${parsed.cidr.prefix}`,
      this.gateway.split("/")[0],
    ]);
    this.powerOn(node.name);
    this.log(`machine ${node.name} (${node.role}, ${node.internalIp}) created, instance ${machine.instanceId}`);
    return machine;
  }

  /** What a new machine boots with (boot.sh reads it on first boot). */
  private writeSeed(node: PlannedNode, seed: string): void {
    fs.mkdirSync(path.join(seed, "root"), { recursive: true });
    const hosts = [
      "127.0.0.1 localhost",
      `${node.internalIp} ${node.name}`,
      `${METADATA_IP} metadata.google.internal`,
      `${STORAGE_IP} storage.googleapis.com`,
      ...(this.options.hosts ?? []),
    ];
    fs.writeFileSync(path.join(seed, "hosts"), `${hosts.join("\n")}\n`);
    fs.writeFileSync(path.join(seed, "resolv.conf"), `nameserver ${this.gateway.split("/")[0]}\n`);
    fs.writeFileSync(path.join(seed, "user"), SSH_USER);
    fs.writeFileSync(path.join(seed, "authorized_keys"), `${this.options.sshPublicKey.trim()}\n`);
    fs.copyFileSync(this.caCert, path.join(seed, "lab-ca.crt"));
    fs.copyFileSync(path.join(HERE, "kubeadm-wrapper.sh"), path.join(seed, "kubeadm-wrapper"));
    // The cloud-init stand-in: the files of the cloud-config every VM boots with (render/cloudinit.ts).
    const cloudConfig = parse(renderCloudConfig()) as {
      write_files?: { path: string; content: string; permissions?: string }[];
    };
    for (const file of cloudConfig.write_files ?? []) {
      const target = path.join(seed, "root", file.path);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, file.content, { mode: parseInt(file.permissions ?? "0644", 8) });
    }
  }

  /** Boots a machine from its disk. */
  powerOn(name: string): void {
    const machine = this.machine(name);
    if (this.isOn(name)) throw new Error(`machine ${name} is on`);
    const console = fs.openSync(path.join(machine.disk, "console.log"), "a");
    machine.launcher = spawn(
      "bash",
      [
        path.join(HERE, "machine.sh"),
        "start",
        this.name,
        name,
        machine.disk,
        path.join(machine.disk, "seed"),
        path.join(this.options.artifacts, "labtool"),
      ],
      { stdio: ["ignore", console, console], detached: true },
    );
    machine.launcher.unref();
    fs.closeSync(console);
  }

  /** True while the machine runs (its namespaces' creator is alive). */
  isOn(name: string): boolean {
    const pid = this.machine(name).launcher?.pid;
    return pid !== undefined && pidAlive(pid) && !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  }

  /** A power cut: every process of the machine killed at once; its disk stays. */
  powerOff(name: string): void {
    sh("bash", [path.join(HERE, "machine.sh"), "kill", this.name, name]);
  }

  /** The machine's PID 1 on this host (for nsenter), once it runs. */
  pid1(name: string): number {
    const launcher = this.machine(name).launcher?.pid;
    if (!launcher) throw new Error(`machine ${name} is off`);
    const children = fs.readFileSync(`/proc/${launcher}/task/${launcher}/children`, "utf8").trim().split(/\s+/);
    const pid = Number(children[0]);
    if (!pid) throw new Error(`machine ${name} has not booted`);
    return pid;
  }

  /** The machine gone: powered off, disk deleted, unplugged from the network. */
  destroyMachine(name: string): void {
    const machine = this.machine(name);
    this.powerOff(name);
    sh("bash", [path.join(HERE, "net.sh"), "detach", this.name, name]);
    fs.rmSync(machine.disk, { recursive: true, force: true });
    this.machines.delete(name);
    this.log(`machine ${name} destroyed`);
  }

  machine(name: string): LabMachine {
    const found = this.machines.get(name);
    if (!found) throw new Error(`the lab has no machine ${name}`);
    return found;
  }

  /** Runs a command as root inside a machine (its namespaces), for checks. */
  execArgs(name: string, argv: readonly string[]): string[] {
    return [
      "nsenter",
      "-t",
      String(this.pid1(name)),
      "-m",
      "-u",
      "-i",
      "-n",
      "-p",
      "-C",
      "--wd=/",
      "--",
      "env",
      "-i",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "HOME=/root",
      "KUBECONFIG=/etc/kubernetes/admin.conf",
      ...argv,
    ];
  }

  /** The argv that runs a command in the router's namespace (where the lab's services listen). */
  routerArgs(argv: readonly string[]): string[] {
    return ["ip", "netns", "exec", `${this.name}-router`, ...argv];
  }

  /** The argv that runs a command where the deploying machine would run it. */
  deployerArgs(argv: readonly string[]): string[] {
    return ["ip", "netns", "exec", `${this.name}-deployer`, ...argv];
  }

  /** Ends everything of the lab; safe to call twice. */
  async stop(): Promise<void> {
    for (const name of [...this.machines.keys()]) {
      try {
        this.powerOff(name);
      } catch (error) {
        this.log(`power-off of ${name}: ${(error as Error).message}`);
      }
    }
    await removeLab(this.name);
    // Reap what this process started (the launchers, the services), so no zombie is left either.
    const children = [...this.services, ...[...this.machines.values()].map((m) => m.launcher)];
    for (const child of children) {
      if (!child || child.exitCode !== null || child.signalCode !== null) continue;
      await Promise.race([new Promise((resolve) => child.once("exit", resolve)), sleep(5000)]);
    }
    this.services.length = 0;
  }
}

/** The cgroup directories, namespaces and files of one lab, removed (its processes killed first). */
async function removeLab(name: string): Promise<void> {
  // Any process still in a lab namespace.
  for (const ns of sh("bash", [path.join(HERE, "net.sh"), "list", name])
    .split("\n")
    .filter(Boolean)) {
    const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  // Machines' cgroups (their processes are killed by machine.sh kill).
  const machinesDir = path.join(LAB_ROOT, name, "machines");
  const machineNames = fs.existsSync(machinesDir) ? fs.readdirSync(machinesDir) : [];
  for (const machine of new Set([...machineNames, ...labCgroupMachines(name), "services"])) {
    spawnSync("bash", [path.join(HERE, "machine.sh"), "kill", name, machine], { encoding: "utf8" });
  }
  await sleep(100);
  sh("bash", [path.join(HERE, "net.sh"), "down", name]);
  fs.rmSync(path.join(LAB_ROOT, name), { recursive: true, force: true });
}

/** Machine names that still have a cgroup directory of this lab. */
function labCgroupMachines(name: string): string[] {
  const found = new Set<string>();
  for (const dir of cgroupRoots()) {
    if (!fs.existsSync(dir)) continue;
    for (const entry of fs.readdirSync(dir)) {
      if (entry.startsWith(`${name}-`)) found.add(entry.slice(name.length + 1));
    }
  }
  return [...found];
}

/** This process's cgroup directory in every hierarchy (where machines' cgroups are made). */
function cgroupRoots(): string[] {
  return fs
    .readFileSync("/proc/self/cgroup", "utf8")
    .trim()
    .split("\n")
    .map((line) => {
      const [, ctrl, dir] = line.split(":");
      const mount = ctrl === "" ? "unified" : ctrl === "name=systemd" ? "systemd" : ctrl.split(",")[0];
      return `/sys/fs/cgroup/${mount}${dir === "/" ? "" : dir}`;
    });
}

/** What is left of labs (all, or one): namespaces, cgroups, processes, mounts, disk. Empty: nothing. */
export function leftovers(name?: string): string[] {
  const prefix = name ?? LAB_PREFIX;
  const left: string[] = [];
  const namespaces = spawnSync("ip", ["netns", "list"], { encoding: "utf8" })
    .stdout.split("\n")
    .map((l) => l.split(" ")[0])
    .filter((n) => n.startsWith(prefix));
  left.push(...namespaces.map((n) => `network namespace ${n}`));
  for (const dir of cgroupRoots()) {
    if (!fs.existsSync(dir)) continue;
    for (const entry of fs.readdirSync(dir)) {
      if (entry.startsWith(prefix)) left.push(`cgroup ${path.join(dir, entry)}`);
    }
  }
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      // A zombie holds nothing; its parent reaps it.
      if (/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))) continue;
      const cgroup = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8");
      if (cgroup.includes(`/${prefix}`))
        left.push(`process ${pid} (${fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim()})`);
    } catch {
      // gone meanwhile
    }
  }
  const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n");
  for (const line of mounts) {
    const point = line.split(" ")[4];
    if (point && (point.startsWith(path.join(LAB_ROOT, prefix)) || point.startsWith(`/run/netns/${prefix}`))) {
      left.push(`mount ${point}`);
    }
  }
  if (fs.existsSync(LAB_ROOT)) {
    for (const entry of fs.readdirSync(LAB_ROOT))
      if (entry.startsWith(prefix)) left.push(`directory ${path.join(LAB_ROOT, entry)}`);
  }
  return left;
}

/** A lab that `npm run lab -- up` left running on purpose: only `npm run lab -- down` removes it. */
export const KEPT_MARKER = "kept-by-npm-run-lab";

/**
 * Removes the labs of runs that are gone (their owner process no longer runs), but not those kept
 * running by `npm run lab -- up` unless `includeKept`.
 */
export async function removeAbandonedLabs(
  log: (line: string) => void = () => undefined,
  includeKept = false,
): Promise<void> {
  const names = new Set<string>();
  if (fs.existsSync(LAB_ROOT)) for (const e of fs.readdirSync(LAB_ROOT)) if (e.startsWith(LAB_PREFIX)) names.add(e);
  for (const line of spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout.split("\n")) {
    const m = new RegExp(`^(${LAB_PREFIX}[0-9a-f]{6})-`).exec(line);
    if (m) names.add(m[1]);
  }
  for (const name of names) {
    if (!includeKept && fs.existsSync(path.join(LAB_ROOT, name, KEPT_MARKER))) continue;
    const ownerFile = path.join(LAB_ROOT, name, "owner.pid");
    const owner = fs.existsSync(ownerFile) ? Number(fs.readFileSync(ownerFile, "utf8")) : 0;
    if (owner && owner !== process.pid && pidAlive(owner)) continue;
    log(`removing the abandoned lab ${name}`);
    await removeLab(name);
  }
}
