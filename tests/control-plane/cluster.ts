// A real Kubernetes control plane for tests, started from the rendered stack on loopback:
//   - three etcd members (one per control plane of the plan) with TLS, forming one cluster;
//   - kube-apiserver of the first control plane, behind HAProxy on the endpoint address with the
//     rendered frontend/backend (render/haproxy.ts), as the cluster's controlPlaneEndpoint;
//   - kube-controller-manager with kubeadm's controller list (bootstrapsigner and tokencleaner on,
//     so cluster-info is signed and expired tokens are removed as on a real cluster).
// Every certificate and kubeconfig is made by kubeadm's own init phases from the rendered
// InitConfiguration/ClusterConfiguration and the cluster CA; every flag comes from the static Pod
// manifests kubeadm writes for that configuration, changed only where one loopback network stands
// in for several machines (below). kubeadm's upload-config, bootstrap-token and addon phases then
// run against the API server, as `kubeadm init` runs them.
//
// The plan's addresses (10.10.0.x for dev) are real addresses of the loopback interface of a
// private network namespace that tests/control-plane/run.sh creates, so the rendered files are used
// unchanged and two runs can never collide. kubeadm itself refuses a loopback advertise address
// (SetAPIEndpointDynamicDefaults in cmd/kubeadm/app/util/config/initconfiguration.go), so 127.x
// addresses could not stand in for them.
//
// Used by the control-plane suite; built to be reused (upgrade and etcd backup/restore tests).

import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { renderHaproxyForPlan } from "../../render/haproxy";
import { API_PORT } from "../../render/plan";
import { DEFAULT_KUBERNETES_MINOR } from "../../render/versions";
import { apiRequest } from "./api";
import { ControlPlaneBinaries, controlPlaneBinaries } from "./binaries";
import { Daemon } from "./daemons";
import { RunResult, run, runOk, waitFor } from "./exec";
import { flagArgs } from "./kubeadm-files";
import { Machine, prepareMachines } from "./machines";
import { ClusterCa, createClusterCa } from "./pki";
import { TEST_STACK, TestStack, renderTestStack, testStackConfig } from "./stack";

export type { Machine } from "./machines";

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  /** The member's flags (kubeadm's, adapted); startEtcdMember starts it with them as they are then. */
  readonly flags: Map<string, string>;
  readonly daemon: Daemon;
  /** Written while the member runs: what the crictl stub reports as the running etcd container. */
  readonly pidFile: string;
}

export interface ControlPlane {
  readonly dir: string;
  readonly stack: TestStack;
  readonly binaries: ControlPlaneBinaries;
  readonly ca: ClusterCa;
  /** controlPlaneEndpoint, ip:port (HAProxy). */
  readonly endpoint: string;
  /** The first control plane: runs kube-apiserver and kube-controller-manager, ran "kubeadm init". */
  readonly first: Machine;
  readonly etcd: readonly EtcdMember[];
  machine(name: string): Machine;
  /** kubectl with the first control plane's admin.conf (or another kubeconfig). */
  kubectl(args: readonly string[], options?: { kubeconfig?: string; input?: string }): Promise<RunResult>;
  /** etcdctl against one member (default: the first) with its healthcheck-client certificate. */
  etcdctl(args: readonly string[], member?: string): Promise<RunResult>;
  stopEtcdMember(name: string): Promise<void>;
  startEtcdMember(name: string): Promise<void>;
  /** Every process this control plane started, and whether it still runs. */
  processes(): { name: string; running: boolean }[];
  stop(): Promise<void>;
}

/** Throws unless every plan address can be bound here, i.e. we are inside run.sh's namespace. */
async function assertAddressesLocal(addresses: readonly string[]): Promise<void> {
  for (const address of addresses) {
    await new Promise<void>((resolve, reject) => {
      const server = net.createServer();
      server.once("error", (error) =>
        reject(
          new Error(
            `cannot bind ${address} (${(error as Error).message}): the control-plane tests run inside the network ` +
              "namespace tests/control-plane/run.sh creates (npm run test:control-plane)",
          ),
        ),
      );
      server.listen(0, address, () => server.close(() => resolve()));
    });
  }
}

function readyz(server: string, ca: string): Promise<boolean | string> {
  return apiRequest({ server, ca }, "GET", "/readyz").then(
    (r) => r.status === 200 || `HTTP ${r.status}: ${r.body.slice(0, 300)}`,
  );
}

/** The dev stack at the default minor; kept after stop (for debugging) when HA_K8S_KEEP_CONTROL_PLANE is set. */
export async function startControlPlane(): Promise<ControlPlane> {
  const minor = DEFAULT_KUBERNETES_MINOR;
  const binaries = controlPlaneBinaries(minor);
  const config = testStackConfig(TEST_STACK, minor);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ha-k8s-control-plane-"));
  const daemons: Daemon[] = [];
  const logs = path.join(dir, "logs");
  fs.mkdirSync(logs);
  const keep = Boolean(process.env.HA_K8S_KEEP_CONTROL_PLANE);

  const stopAll = async () => {
    // Reverse start order: controllers and the API server before the etcd members they use.
    for (const daemon of [...daemons].reverse()) await daemon.stop();
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    const ca = await createClusterCa(path.join(dir, "ca"), config.clusterName);
    const stack = renderTestStack(path.join(dir, "render"), ca, config, TEST_STACK);
    const firstNode = stack.controlPlanes[0];
    await assertAddressesLocal([stack.plan.endpoint.internalIp, ...stack.plan.nodes.map((n) => n.internalIp)]);

    const prepared = await prepareMachines(dir, stack, binaries);
    const { machine } = prepared;
    const first = machine(firstNode.name);
    const flagsOf = prepared.flags;
    const kubeadm = (args: readonly string[]) => runOk(binaries.kubeadm, args);

    // etcd: one member per control plane, all started at once as one new cluster. Each machine of
    // a real cluster has its own 127.0.0.1; here only the first control plane keeps it (its API
    // server and scripts reach "the local etcd" there), the others listen on their own address.
    const etcd: EtcdMember[] = [];
    const initialCluster = stack.controlPlanes.map((n) => `${n.name}=https://${n.internalIp}:2380`).join(",");
    for (const node of stack.controlPlanes) {
      const m = machine(node.name);
      const flags = flagsOf(node.name, "etcd");
      const dataDir = path.join(m.root, "var/lib/etcd");
      flags.set("data-dir", dataDir);
      flags.set("initial-cluster", initialCluster);
      flags.set("initial-cluster-state", "new");
      if (node !== firstNode) {
        flags.set("listen-client-urls", `https://${node.internalIp}:2379`);
        flags.set("listen-metrics-urls", `http://${node.internalIp}:2381`);
      }
      const daemon = new Daemon(`etcd ${node.name}`, binaries.etcd, path.join(logs, `etcd-${node.name}.log`));
      const pidFile = path.join(m.root, "run/ha-k8s-test/etcd.pid");
      fs.mkdirSync(path.dirname(pidFile), { recursive: true });
      etcd.push({
        name: node.name,
        clientUrl: node === firstNode ? "https://127.0.0.1:2379" : `https://${node.internalIp}:2379`,
        peerUrl: `https://${node.internalIp}:2380`,
        flags,
        daemon,
        pidFile,
      });
    }
    const startMember = (member: EtcdMember) => {
      member.daemon.start(flagArgs(member.flags));
      if (!daemons.includes(member.daemon)) daemons.push(member.daemon);
      fs.writeFileSync(member.pidFile, `${member.daemon.pid}\n`);
    };
    etcd.forEach(startMember);
    const etcdctl = (args: readonly string[], memberName = firstNode.name) => {
      const member = etcd.find((e) => e.name === memberName);
      if (!member) throw new Error(`no etcd member ${memberName}`);
      const pki = machine(memberName).pki;
      return run(binaries.etcdctl, [
        `--endpoints=${member.clientUrl}`,
        `--cacert=${pki}/etcd/ca.crt`,
        `--cert=${pki}/etcd/healthcheck-client.crt`,
        `--key=${pki}/etcd/healthcheck-client.key`,
        "--command-timeout=10s",
        ...args,
      ]);
    };
    await waitFor(
      "three healthy etcd members",
      async () => {
        etcd.forEach((e) => e.daemon.assertRunning());
        const health = await etcdctl(["endpoint", "health", "--cluster"]);
        return health.code === 0 || health.output;
      },
      60_000,
    );

    // kube-apiserver. One change: it binds its machine's address (kubeadm sets no --bind-address,
    // getAPIServerCommand in cmd/kubeadm/app/phases/controlplane/manifests.go: 0.0.0.0), since
    // HAProxy holds the endpoint address on the same port of the same network namespace.
    const apiserverFlags = flagsOf(firstNode.name, "kube-apiserver");
    apiserverFlags.set("bind-address", firstNode.internalIp);
    const apiserver = new Daemon("kube-apiserver", binaries.kubeApiserver, path.join(logs, "kube-apiserver.log"));
    apiserver.start(flagArgs(apiserverFlags));
    daemons.push(apiserver);
    const localApi = `https://${firstNode.internalIp}:${API_PORT}`;
    await waitFor(
      "kube-apiserver /readyz",
      async () => {
        apiserver.assertRunning();
        return readyz(localApi, ca.certPem);
      },
      120_000,
    );

    // HAProxy on the endpoint address, with the frontend, backend and health checks production uses.
    const haproxyDir = path.join(dir, "haproxy");
    fs.mkdirSync(haproxyDir);
    const haproxyConfig = path.join(haproxyDir, "haproxy.cfg");
    fs.writeFileSync(
      haproxyConfig,
      renderHaproxyForPlan(stack.plan, {
        bindAddress: stack.plan.endpoint.internalIp,
        runtime: { kind: "test", dir: haproxyDir },
      }),
    );
    const haproxy = new Daemon("haproxy", "haproxy", path.join(logs, "haproxy.log"));
    haproxy.start(["-W", "-db", "-f", haproxyConfig]);
    daemons.push(haproxy);
    const endpoint = `${stack.plan.endpoint.internalIp}:${stack.plan.endpoint.port}`;
    await waitFor(
      "the API through HAProxy on the endpoint",
      async () => {
        haproxy.assertRunning();
        return readyz(`https://${endpoint}`, ca.certPem);
      },
      30_000,
    );

    const kubectl = (args: readonly string[], opts: { kubeconfig?: string; input?: string } = {}) =>
      run(binaries.kubectl, ["--kubeconfig", opts.kubeconfig ?? first.adminConf, "--request-timeout=20s", ...args], {
        input: opts.input,
      });

    // admin.conf's group (kubeadm:cluster-admins) gets cluster-admin from a binding kubeadm init
    // creates with super-admin.conf (EnsureAdminClusterRoleBindingImpl, phases/kubeconfig); kubeadm
    // does that only when its kubeconfig is the default /etc/kubernetes/admin.conf (initData.Client in
    // cmd/kubeadm/app/cmd/init.go), so the same binding is made here.
    const superAdmin = path.join(first.kubernetesDir, "super-admin.conf");
    await waitFor(
      "the kubeadm:cluster-admins binding",
      async () => {
        const result = await kubectl(["create", "clusterrolebinding", "kubeadm:cluster-admins",
          "--clusterrole=cluster-admin", "--group=kubeadm:cluster-admins"], { kubeconfig: superAdmin }); // prettier-ignore
        return result.code === 0 || result.output;
      },
      30_000,
    );

    // kube-controller-manager: kubeadm's flags; its kubeconfig paths are kubeadm's fixed
    // /etc/kubernetes, i.e. the first control plane's.
    const kcmFlags = flagsOf(firstNode.name, "kube-controller-manager");
    for (const [name, value] of kcmFlags) {
      if (value.startsWith("/etc/kubernetes/")) kcmFlags.set(name, path.join(first.root, value));
    }
    const kcm = new Daemon("kube-controller-manager", binaries.kubeControllerManager,
      path.join(logs, "kube-controller-manager.log")); // prettier-ignore
    kcm.start(flagArgs(kcmFlags));
    daemons.push(kcm);

    // What `kubeadm init` does once the API answers, with the rendered configuration as it is (the
    // cluster keeps /etc/kubernetes/pki as certificatesDir, as a real one would).
    const renderedInit = path.join(dir, "configs", "kubeadm-init.yaml");
    fs.writeFileSync(renderedInit, prepared.initConfig, { mode: 0o600 });
    await kubeadm(["init", "phase", "upload-config", "all", "--config", renderedInit, "--kubeconfig", first.adminConf]);
    await kubeadm(["init", "phase", "bootstrap-token", "--config", renderedInit, "--kubeconfig", first.adminConf]);
    // kubeadm init's last phase: the CoreDNS Deployment and the kube-proxy DaemonSet with their
    // ConfigMaps (their Pods wait for a scheduler, which the suite has only where a test starts the
    // stand-in of scheduler.ts). `kubeadm upgrade` reads and upgrades both.
    await kubeadm(["init", "phase", "addon", "all", "--config", renderedInit, "--kubeconfig", first.adminConf]);
    const tokenId = stack.values.bootstrapToken.split(".")[0];
    await waitFor(
      "kube-controller-manager's bootstrap signer to sign cluster-info",
      async () => {
        kcm.assertRunning();
        const clusterInfo = await apiRequest(
          { server: `https://${endpoint}`, ca: ca.certPem },
          "GET",
          "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        );
        return (
          (clusterInfo.status === 200 &&
            (JSON.parse(clusterInfo.body) as { data: Record<string, string> }).data[`jws-kubeconfig-${tokenId}`] !==
              undefined) ||
          `HTTP ${clusterInfo.status}`
        );
      },
      60_000,
    );

    return {
      dir,
      stack,
      binaries,
      ca,
      endpoint,
      first,
      etcd,
      machine,
      kubectl,
      etcdctl,
      async stopEtcdMember(name) {
        const member = etcd.find((e) => e.name === name)!;
        await member.daemon.stop();
        fs.rmSync(member.pidFile, { force: true });
      },
      async startEtcdMember(name) {
        startMember(etcd.find((e) => e.name === name)!);
      },
      processes: () => daemons.map((d) => ({ name: d.name, running: d.running })),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
