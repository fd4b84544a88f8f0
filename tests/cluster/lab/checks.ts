// What the tier's tests look at on a lab cluster, each through the way an operator or a machine
// would: kubectl with the stack's kubeconfig output from the deployer (the external address,
// through HAProxy), commands as root inside a machine (etcdctl in the etcd static pod via crictl,
// as the scripts do), and the state of the systemd stand-in's services.

import * as fs from "fs";
import * as path from "path";
import { RunResult, run } from "../../control-plane/exec";
import { LabCluster } from "./cluster";
import { LAB_BUCKET } from "./lab";

export interface NodeInfo {
  readonly name: string;
  readonly ready: boolean;
  readonly kubeletVersion: string;
  readonly uid: string;
}

export interface EtcdMember {
  readonly id: string;
  readonly name: string;
  readonly peerUrl: string;
  readonly learner: boolean;
}

/**
 * What the API probe counts as answered: an API server's reply to /readyz, ready (200) or saying a
 * check is not (500: k8s.io/apiserver pkg/server/healthz/healthz.go, handleRootHealth). Not
 * answered: no HTTP reply within 3 s (000), or HAProxy's own 502/503/504 (no API server behind it).
 * The runs on record saw only 200s.
 */
const API_ANSWERED = ["200", "500"];

export interface ApiProbeAnswer {
  /** When the request started (ms since the epoch, the machine's clock: the host's). */
  readonly at: number;
  /** The HTTP status, 000 for none. */
  readonly code: string;
  readonly ok: boolean;
}

export class Checks {
  private readonly probes = new Set<{ stop(): Promise<ApiProbeAnswer[]> }>();

  constructor(private readonly cluster: LabCluster) {}

  private get lab() {
    return this.cluster.lab;
  }

  /** A bash script as root inside a machine; stdout, or an error with the output. */
  async onMachine(machine: string, script: string, timeoutMs = 120_000): Promise<string> {
    const result = await this.tryOnMachine(machine, script, timeoutMs);
    if (result.code !== 0) throw new Error(`on ${machine} (exit ${result.code}): ${script}\n${result.output}`);
    return result.stdout;
  }

  tryOnMachine(machine: string, script: string, timeoutMs = 120_000): Promise<RunResult> {
    const [cmd, ...args] = this.lab.execArgs(machine, ["bash", "-c", script]);
    return run(cmd, args, { timeoutMs });
  }

  /** kubectl with the stack's kubeconfig output, where the deployer runs (the external address). */
  async kubectl(args: readonly string[], input?: string): Promise<string> {
    const result = await this.tryKubectl(args, input);
    if (result.code !== 0) throw new Error(`kubectl ${args.join(" ")} (exit ${result.code}):\n${result.output}`);
    return result.stdout;
  }

  tryKubectl(args: readonly string[], input?: string, timeoutMs = 60_000): Promise<RunResult> {
    const kubeconfig = path.join(this.lab.dir, "kubeconfig");
    fs.writeFileSync(kubeconfig, this.cluster.kubeconfig(), { mode: 0o600 });
    const kubectl = path.join(this.cluster.options.artifacts, "kubectl");
    const [cmd, ...rest] = this.lab.deployerArgs([
      kubectl,
      "--kubeconfig",
      kubeconfig,
      "--request-timeout=20s",
      ...args,
    ]);
    return run(cmd, rest, { input, timeoutMs });
  }

  async nodes(): Promise<NodeInfo[]> {
    const list = JSON.parse(await this.kubectl(["get", "nodes", "-o", "json"])) as {
      items: {
        metadata: { name: string; uid: string };
        status: { conditions: { type: string; status: string }[]; nodeInfo: { kubeletVersion: string } };
      }[];
    };
    return list.items.map((n) => ({
      name: n.metadata.name,
      uid: n.metadata.uid,
      ready: n.status.conditions.some((c) => c.type === "Ready" && c.status === "True"),
      kubeletVersion: n.status.nodeInfo.kubeletVersion,
    }));
  }

  /** etcdctl in the etcd static pod of a control plane, as scripts/lib.sh etcdctl_local runs it. */
  etcdctl(machine: string, args: string): Promise<string> {
    return this.onMachine(
      machine,
      `crictl exec "$(crictl ps --name '^etcd$' --state running -q | head -n 1)" etcdctl --endpoints=https://127.0.0.1:2379 ` +
        "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt " +
        `--key=/etc/kubernetes/pki/etcd/healthcheck-client.key --command-timeout=10s ${args}`,
    );
  }

  async etcdMembers(machine: string): Promise<EtcdMember[]> {
    const out = JSON.parse(await this.etcdctl(machine, "member list -w json")) as {
      members: { ID: number | string; name: string; peerURLs: string[]; isLearner?: boolean }[];
    };
    // etcdctl prints IDs as JSON numbers beyond 2^53: compare them as text.
    return out.members.map((m) => ({
      id: String(m.ID),
      name: m.name,
      peerUrl: m.peerURLs[0],
      learner: m.isLearner === true,
    }));
  }

  /** "<endpoint> is healthy" lines of `endpoint health --cluster`, from one member. */
  async etcdHealthyEndpoints(machine: string): Promise<string[]> {
    const result = await this.tryOnMachine(
      machine,
      `crictl exec "$(crictl ps --name '^etcd$' --state running -q | head -n 1)" etcdctl --endpoints=https://127.0.0.1:2379 ` +
        "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt " +
        "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key --command-timeout=5s endpoint health --cluster 2>&1 || true",
    );
    return result.stdout
      .split("\n")
      .filter((l) => / is healthy/.test(l))
      .map((l) => l.split(" ")[0]);
  }

  /** How often the systemd stand-in started each service's main process on a machine. */
  async serviceStarts(machine: string): Promise<Record<string, number>> {
    const out = await this.onMachine(
      machine,
      'for d in /run/systemd-standin/*.service; do [ -f "$d/starts" ] && echo "$(basename "$d") $(cat "$d/starts")"; done; true',
    );
    return Object.fromEntries(
      out
        .split("\n")
        .filter(Boolean)
        .map((l) => [l.split(" ")[0], Number(l.split(" ")[1])]),
    );
  }

  /**
   * Bootstrap tokens a node could join with (usage-bootstrap-authentication), by name. kubeadm's own
   * short-lived tokens that only own the uploaded certificates' Secret have no usages at all
   * (createShortLivedBootstrapToken in cmd/kubeadm/app/phases/copycerts/copycerts.go): they cannot
   * authenticate, and expire after 2 hours.
   */
  async joinTokens(): Promise<string[]> {
    const list = JSON.parse(
      await this.kubectl([
        "-n",
        "kube-system",
        "get",
        "secrets",
        "--field-selector=type=bootstrap.kubernetes.io/token",
        "-o",
        "json",
      ]),
    ) as { items: { metadata: { name: string }; data?: Record<string, string> }[] };
    return list.items
      .filter((s) => Buffer.from(s.data?.["usage-bootstrap-authentication"] ?? "", "base64").toString() === "true")
      .map((s) => s.metadata.name);
  }

  /**
   * A new request to the API through HAProxy (the endpoint) every 500 ms from a machine, until
   * stop(): when each started and whether it was answered ready.
   */
  async startApiProbe(machine: string): Promise<{ stop(): Promise<ApiProbeAnswer[]> }> {
    const { endpoint } = this.cluster.stack.plan;
    const stopFile = `/run/api-probe-${Date.now()}.stop`;
    const done = this.onMachine(
      machine,
      `while [ ! -e ${stopFile} ]; do
         started=$(date +%s%3N)
         code=$(curl -ks -o /dev/null -w '%{http_code}' --max-time 3 https://${endpoint.internalIp}:${endpoint.port}/readyz) || true
         echo "$started $code"
         sleep 0.5
       done; rm -f ${stopFile}`,
      3 * 60 * 60_000,
    );
    // A test that fails before stop() must not leave the probe to fail the suite later.
    done.catch(() => undefined);
    const probe = {
      stop: async () => {
        this.probes.delete(probe);
        await this.onMachine(machine, `touch ${stopFile}`);
        return (await done)
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((line) => {
            const [at, code] = line.split(" ");
            return { at: Number(at), code, ok: API_ANSWERED.includes(code) };
          });
      },
    };
    this.probes.add(probe);
    return probe;
  }

  /** Stops the probes a failed test left running. */
  async stopProbes(): Promise<void> {
    await Promise.all([...this.probes].map((probe) => probe.stop().catch(() => undefined)));
  }

  /** The objects in the stack's snapshot bucket, oldest name first (they start with the UTC time). */
  async snapshots(): Promise<string[]> {
    const [cmd, ...args] = this.lab.routerArgs([
      "curl", "-sf", `http://127.0.0.1:4443/storage/v1/b/${LAB_BUCKET}/o`,
    ]); // prettier-ignore
    const result = await run(cmd, args);
    if (result.code !== 0) throw new Error(`listing the bucket: ${result.output}`);
    const list = JSON.parse(result.stdout) as { items?: { name: string }[] };
    return (list.items ?? []).map((o) => o.name).sort();
  }

  /** The requests the mirror answered (client, method, path, status). */
  mirrorRequests(): string[] {
    return fs.existsSync(this.lab.mirrorLog) ? fs.readFileSync(this.lab.mirrorLog, "utf8").split("\n") : [];
  }
}
