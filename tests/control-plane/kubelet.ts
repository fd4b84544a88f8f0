// Stand-ins for the kubelets of the plan's nodes: what a kubelet does against the API server, with a
// kubelet's credentials and nothing else (no containers).
//   - TLS bootstrap (joins): a key and a CSR for system:node:<name> in system:nodes, submitted with
//     the bootstrap token to the kube-apiserver-client-kubelet signer, approved by
//     kube-controller-manager because kubeadm's bootstrap-token phase lets that token's group
//     auto-approve node client CSRs (AutoApproveNodeBootstrapTokens in cmd/kubeadm/app/phases/
//     bootstraptoken/node/tlsbootstrap.go), signed by its csrsigning controller; the result is the node's
//     kubelet.conf (certificate embedded, as kubeadm writes it before kubelet-finalize).
//   - Registration and heartbeats with that identity (the Node authorizer and NodeRestriction
//     apply): the Node object, its status with the Ready condition, its Lease in kube-node-lease
//     renewed every few seconds, so the node lifecycle controller keeps it as reported. The version
//     reported is the suite's Kubernetes patch until the machine's systemctl stub restarts an
//     installed kubelet of another version (an upgrade step), then that one.
//   - Static Pods: the manifests in the machine's /etc/kubernetes/manifests (kubeadm's staticPodPath)
//     become mirror Pods in the API, named, hashed and owned by the Node as the kubelet makes them
//     (applyDefaults in pkg/kubelet/config/common.go, CreateMirrorPod in pkg/kubelet/pod/
//     mirror_client.go); a changed manifest replaces its mirror Pod. Their status is not reported
//     (the processes behind them, where any, are the harness's daemons).
//   - Pods bound to the node are "run": a Pod that restarts never completes at once with exit code 0
//     (as kubeadm's upgrade health-check Job, a `pause -v`, does: createJob in cmd/kubeadm/app/
//     phases/upgrade/health.go), any other reports Running and
//     Ready; nothing is executed.
//   - Pods bound to the node that are being deleted are removed (grace period 0), as the kubelet
//     does once their containers are gone, so a drain completes.
// The first control plane's kubelet.conf comes from kubeadm's own kubeconfig phase, as in init.

import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";
import { PlannedNode } from "../../render/plan";
import { ApiCredentials, apiJson, apiRequest, credentialsFromKubeconfig } from "./api";
import type { ControlPlane } from "./cluster";
import { runOnMachine } from "./bundles";
import { runOk, waitFor } from "./exec";

const HEARTBEAT_MS = 5_000;

interface Csr {
  metadata: { name: string };
  status?: { certificate?: string; conditions?: { type: string; status: string }[] };
}

/** TLS bootstrap of a node with a bootstrap token; writes and returns its kubelet.conf. */
export async function tlsBootstrap(cp: ControlPlane, node: PlannedNode, bootstrapToken: string): Promise<string> {
  const machine = cp.machine(node.name);
  const pkiDir = path.join(machine.root, "var/lib/kubelet/pki");
  fs.mkdirSync(pkiDir, { recursive: true, mode: 0o700 });
  const key = path.join(pkiDir, "kubelet-client.key");
  const csr = path.join(pkiDir, "kubelet-client.csr");
  await runOk("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  await runOk("openssl", [
    "req",
    "-new",
    "-key",
    key,
    "-subj",
    `/O=system:nodes/CN=system:node:${node.name}`,
    "-out",
    csr,
  ]);
  const bootstrap: ApiCredentials = { server: `https://${cp.endpoint}`, ca: cp.ca.certPem, token: bootstrapToken };
  const created = await apiJson<Csr>(bootstrap, "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", {
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: { generateName: "node-csr-" },
    spec: {
      request: fs.readFileSync(csr).toString("base64"),
      signerName: "kubernetes.io/kube-apiserver-client-kubelet",
      usages: ["digital signature", "client auth"],
    },
  });
  let certificate = "";
  await waitFor(
    `the CSR of ${node.name} to be approved and signed`,
    async () => {
      const current = await apiJson<Csr>(
        bootstrap,
        "GET",
        `/apis/certificates.k8s.io/v1/certificatesigningrequests/${created.metadata.name}`,
      );
      certificate = current.status?.certificate ?? "";
      return certificate !== "" || JSON.stringify(current.status ?? {});
    },
    30_000,
  );
  const kubeconfig = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: cp.stack.config.clusterName,
        cluster: {
          server: `https://${cp.endpoint}`,
          "certificate-authority-data": Buffer.from(cp.ca.certPem).toString("base64"),
        },
      },
    ],
    users: [
      {
        name: "default-auth",
        user: { "client-certificate-data": certificate, "client-key-data": fs.readFileSync(key).toString("base64") },
      },
    ],
    contexts: [{ name: "default-context", context: { cluster: cp.stack.config.clusterName, user: "default-auth" } }],
    "current-context": "default-context",
  };
  fs.writeFileSync(machine.kubeletConf, stringify(kubeconfig), { mode: 0o600 });
  return machine.kubeletConf;
}

const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");
const microNow = () => new Date().toISOString().replace(/Z$/, "000Z");

interface PodObject {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    deletionTimestamp?: string;
    annotations?: Record<string, string>;
  };
  spec: { restartPolicy?: string; hostNetwork?: boolean; containers: { name: string; image: string }[] };
  status?: { phase?: string };
}

/** The kubelet's annotations of a static Pod (pkg/kubelet/types/pod_update.go). */
const CONFIG_HASH = "kubernetes.io/config.hash";
const CONFIG_MIRROR = "kubernetes.io/config.mirror";
const CONFIG_SOURCE = "kubernetes.io/config.source";

export class FakeKubelet {
  private readonly api: ApiCredentials;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> = Promise.resolve();
  /** Mirror Pod name -> the hash of the manifest it mirrors. */
  private readonly mirrored = new Map<string, string>();
  /** Set once the API says the Node is gone: like a kubelet, it does not register again. */
  deleted = false;
  /** The last heartbeat that failed (an API refusal would show here); empty when all went through. */
  lastError = "";
  /** Every heartbeat the API server refused (401/403: authentication, Node authorizer, NodeRestriction). */
  readonly refusals: string[] = [];

  private ready = false;

  constructor(
    readonly node: PlannedNode,
    kubeletConf: string,
    private kubeletVersion: string,
    private readonly machine: {
      /** The machine's /etc/kubernetes/manifests (kubeadm's staticPodPath); may not exist. */
      readonly staticPodPath?: string;
      /**
       * The version of the kubelet the machine last (re)started, once its systemctl stub restarted
       * one (tests/control-plane/stubs/systemctl); reported from the next heartbeat on.
       */
      readonly versionFile?: string;
    } = {},
  ) {
    this.api = credentialsFromKubeconfig(kubeletConf);
  }

  /** Registers the Node (if missing) with the given readiness and starts the heartbeats. */
  async start(ready: boolean): Promise<void> {
    const name = this.node.name;
    const existing = await apiRequest(this.api, "GET", `/api/v1/nodes/${name}`);
    if (existing.status === 404) {
      await apiJson(this.api, "POST", "/api/v1/nodes", {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name,
          labels: {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
          },
        },
      });
    } else if (existing.status !== 200) {
      throw new Error(`GET node ${name}: HTTP ${existing.status}: ${existing.body}`);
    }
    await this.setReady(ready);
    await this.syncStaticPods();
    this.timer = setInterval(() => {
      this.beating = this.heartbeat().catch((error: Error) => {
        this.lastError = error.message;
        if (/HTTP 40[13]\b/.test(error.message)) this.refusals.push(error.message);
      });
    }, HEARTBEAT_MS);
    // A test that forgets to stop a kubelet must not keep the test process alive.
    this.timer.unref();
  }

  async setReady(ready: boolean): Promise<void> {
    this.ready = ready;
    const transition = now();
    const condition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: transition,
      lastTransitionTime: transition,
    });
    await apiJson(
      this.api,
      "PATCH",
      `/api/v1/nodes/${this.node.name}/status`,
      {
        status: {
          conditions: [
            condition(
              "MemoryPressure",
              "False",
              "KubeletHasSufficientMemory",
              "kubelet has sufficient memory available",
            ),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ready
              ? condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
              : condition(
                  "Ready",
                  "False",
                  "KubeletNotReady",
                  "container runtime network not ready: NetworkReady=false",
                ),
          ],
          addresses: [
            { type: "InternalIP", address: this.node.internalIp },
            { type: "Hostname", address: this.node.name },
          ],
          capacity: { cpu: "2", memory: "4026Mi", pods: "110" },
          allocatable: { cpu: "2", memory: "3924Mi", pods: "110" },
          nodeInfo: {
            kubeletVersion: `v${this.kubeletVersion}`,
            containerRuntimeVersion: "cri-o://fake",
            operatingSystem: "linux",
            architecture: "amd64",
            osImage: "ha-k8s test machine",
            kernelVersion: "",
            kubeProxyVersion: "",
            machineID: "",
            systemUUID: "",
            bootID: "",
          },
        },
      },
      "application/strategic-merge-patch+json",
    );
  }

  private async heartbeat(): Promise<void> {
    if (this.deleted) return;
    const name = this.node.name;
    const lease = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`;
    const renewed = await apiRequest(
      this.api,
      "PATCH",
      lease,
      { spec: { renewTime: microNow() } },
      "application/merge-patch+json",
    );
    if (renewed.status === 404) {
      const node = await apiRequest(this.api, "GET", `/api/v1/nodes/${name}`);
      if (node.status === 404) {
        this.deleted = true;
        return;
      }
      const uid = (JSON.parse(node.body) as { metadata: { uid: string } }).metadata.uid;
      await apiJson(this.api, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name, ownerReferences: [{ apiVersion: "v1", kind: "Node", name, uid }] },
        spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: microNow() },
      });
    } else if (renewed.status !== 200) {
      throw new Error(`renewing the lease of ${name}: HTTP ${renewed.status}`);
    }
    const { versionFile } = this.machine;
    const restarted = versionFile && fs.existsSync(versionFile) ? fs.readFileSync(versionFile, "utf8").trim() : "";
    if (restarted && restarted !== this.kubeletVersion) {
      this.kubeletVersion = restarted;
      await this.setReady(this.ready);
    }
    await this.syncStaticPods();
    const pods = await apiJson<{ items: PodObject[] }>(
      this.api,
      "GET",
      `/api/v1/pods?fieldSelector=spec.nodeName%3D${name}`,
    );
    for (const pod of pods.items) {
      const mirror = pod.metadata.annotations?.[CONFIG_MIRROR] !== undefined;
      if (!mirror && !pod.metadata.deletionTimestamp && (pod.status?.phase ?? "Pending") === "Pending") {
        await this.runPod(pod);
      }
    }
    // Pods being deleted on this node: their containers are "gone", so they go (kubelet status manager).
    for (const pod of pods.items.filter((p) => p.metadata.deletionTimestamp)) {
      const deleted = await apiRequest(
        this.api,
        "DELETE",
        `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}?gracePeriodSeconds=0`,
        { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } },
      );
      if (deleted.status !== 200 && deleted.status !== 404) {
        throw new Error(`deleting pod ${pod.metadata.name}: HTTP ${deleted.status}: ${deleted.body.slice(0, 300)}`);
      }
    }
  }

  /**
   * Mirror Pods of the static Pod manifests, as the kubelet creates them: the manifest's Pod named
   * <name>-<node>, bound to the node, its hash (here of the file) as config.hash and config.mirror,
   * the NoExecute toleration of static Pods, and the Node as its controller (NodeRestriction admits
   * nothing else from a kubelet).
   */
  async syncStaticPods(): Promise<void> {
    if (this.deleted || !this.machine.staticPodPath || !fs.existsSync(this.machine.staticPodPath)) return;
    let nodeUid = "";
    for (const file of fs
      .readdirSync(this.machine.staticPodPath)
      .filter((f) => f.endsWith(".yaml"))
      .sort()) {
      const content = fs.readFileSync(path.join(this.machine.staticPodPath, file), "utf8");
      const hash = createHash("sha256")
        .update(`host:${this.node.name}file:${file}`)
        .update(content)
        .digest("hex")
        .slice(0, 32); // 128 bits, as the kubelet's FNV-128a
      const pod = parse(content) as {
        metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
        spec: { tolerations?: unknown[] } & Record<string, unknown>;
      };
      const name = `${pod.metadata.name}-${this.node.name}`;
      if (this.mirrored.get(name) === hash) continue;
      const namespace = pod.metadata.namespace ?? "default";
      const podPath = `/api/v1/namespaces/${namespace}/pods`;
      const existing = await apiRequest(this.api, "GET", `${podPath}/${name}`);
      if (existing.status === 200) {
        const current = JSON.parse(existing.body) as PodObject;
        if (current.metadata.annotations?.[CONFIG_MIRROR] === hash) {
          this.mirrored.set(name, hash);
          continue;
        }
        await apiJson(this.api, "DELETE", `${podPath}/${name}?gracePeriodSeconds=0`);
      }
      if (!nodeUid) {
        const node = await apiJson<{ metadata: { uid: string } }>(this.api, "GET", `/api/v1/nodes/${this.node.name}`);
        nodeUid = node.metadata.uid;
      }
      await apiJson(this.api, "POST", podPath, {
        ...pod,
        metadata: {
          ...pod.metadata,
          name,
          namespace,
          annotations: {
            ...pod.metadata.annotations,
            [CONFIG_HASH]: hash,
            [CONFIG_MIRROR]: hash,
            [CONFIG_SOURCE]: "file",
          },
          ownerReferences: [{ apiVersion: "v1", kind: "Node", name: this.node.name, uid: nodeUid, controller: true }],
        },
        spec: {
          ...pod.spec,
          nodeName: this.node.name,
          tolerations: [...(pod.spec.tolerations ?? []), { operator: "Exists", effect: "NoExecute" }],
        },
      });
      this.mirrored.set(name, hash);
    }
  }

  /** A bound Pod "runs": completed at once (restartPolicy Never) or Running and Ready. */
  private async runPod(pod: PodObject): Promise<void> {
    const at = now();
    const completes = pod.spec.restartPolicy === "Never";
    const condition = (type: string, status: string) => ({ type, status, lastTransitionTime: at });
    const status = {
      phase: completes ? "Succeeded" : "Running",
      hostIP: this.node.internalIp,
      ...(pod.spec.hostNetwork ? { podIP: this.node.internalIp } : {}),
      startTime: at,
      conditions: [
        condition("PodScheduled", "True"),
        condition("Initialized", "True"),
        condition("ContainersReady", completes ? "False" : "True"),
        condition("Ready", completes ? "False" : "True"),
      ],
      containerStatuses: pod.spec.containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: "",
        ready: !completes,
        started: !completes,
        restartCount: 0,
        state: completes
          ? { terminated: { exitCode: 0, reason: "Completed", startedAt: at, finishedAt: at } }
          : { running: { startedAt: at } },
      })),
    };
    const patched = await apiRequest(
      this.api,
      "PATCH",
      `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/status`,
      { status },
      "application/strategic-merge-patch+json",
    );
    if (patched.status !== 200 && patched.status !== 404) {
      throw new Error(`reporting pod ${pod.metadata.name}: HTTP ${patched.status}: ${patched.body.slice(0, 300)}`);
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.beating;
  }
}

/** Starts a fake kubelet on a node; joins TLS-bootstrap first with the bootstrap token. */
export async function startKubelet(
  cp: ControlPlane,
  nodeName: string,
  options: { ready: boolean; bootstrapToken?: string },
): Promise<FakeKubelet> {
  const node = cp.stack.node(nodeName);
  const conf = options.bootstrapToken
    ? await tlsBootstrap(cp, node, options.bootstrapToken)
    : cp.machine(nodeName).kubeletConf;
  if (!fs.existsSync(conf)) throw new Error(`${nodeName} has no kubelet.conf; TLS-bootstrap it with a token`);
  const machine = cp.machine(nodeName);
  const kubelet = new FakeKubelet(node, conf, cp.binaries.kubernetesVersion, {
    staticPodPath: machine.manifests,
    versionFile: path.join(machine.root, "run/ha-k8s-test/kubelet-version"),
  });
  await kubelet.start(options.ready);
  if (node.role === "control-plane") await markControlPlane(cp, nodeName);
  return kubelet;
}

/**
 * What `kubeadm init` and `kubeadm join --control-plane` do once the kubelet has registered the
 * Node: their mark-control-plane phase labels it node-role.kubernetes.io/control-plane (which
 * kubeadm's upgrade health check reads: controlPlaneNodesReady in cmd/kubeadm/app/phases/upgrade/
 * health.go) and taints it NoSchedule. The phase itself, run on the machine with the rendered
 * configuration, as the first control plane's init and the others' join run it.
 */
async function markControlPlane(cp: ControlPlane, nodeName: string): Promise<void> {
  const first = cp.stack.controlPlanes[0].name === nodeName;
  const step = cp.stack.step(first ? "init" : "join", nodeName);
  const config = cp.stack.staged(step, first ? "kubeadm-init.yaml" : "kubeadm-join.yaml");
  const phase = first
    ? ["init", "phase", "mark-control-plane"]
    : ["join", "phase", "control-plane-join", "mark-control-plane"];
  const result = await runOnMachine(cp, nodeName, cp.binaries.kubeadm, [...phase, "--config", config]);
  if (result.code !== 0) throw new Error(`kubeadm ${phase.join(" ")} on ${nodeName} failed:\n${result.output}`);
}
