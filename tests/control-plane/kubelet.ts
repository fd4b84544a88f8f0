// Stand-ins for the kubelets of the plan's nodes: what a kubelet does against the API server, with a
// kubelet's credentials and nothing else (no containers).
//   - TLS bootstrap (joins): a key and a CSR for system:node:<name> in system:nodes, submitted with
//     the bootstrap token to the kube-apiserver-client-kubelet signer, approved by
//     kube-controller-manager because kubeadm's bootstrap-token phase lets that token's group
//     auto-approve node client CSRs, signed by its csrsigning controller; the result is the node's
//     kubelet.conf (certificate embedded, as kubeadm writes it before kubelet-finalize).
//   - Registration and heartbeats with that identity (the Node authorizer and NodeRestriction
//     apply): the Node object, its status with the Ready condition, its Lease in kube-node-lease
//     renewed every few seconds, so the node lifecycle controller keeps it as reported.
//   - Pods bound to the node that are being deleted are removed (grace period 0), as the kubelet
//     does once their containers are gone, so a drain completes.
// The first control plane's kubelet.conf comes from kubeadm's own kubeconfig phase, as in init.

import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { PlannedNode } from "../../render/plan";
import { ApiCredentials, apiJson, apiRequest, credentialsFromKubeconfig } from "./api";
import type { ControlPlane } from "./cluster";
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

export class FakeKubelet {
  private readonly api: ApiCredentials;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> = Promise.resolve();
  /** Set once the API says the Node is gone: like a kubelet, it does not register again. */
  deleted = false;
  /** The last heartbeat that failed (an API refusal would show here); empty when all went through. */
  lastError = "";

  constructor(
    readonly node: PlannedNode,
    kubeletConf: string,
    private readonly kubeletVersion: string,
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
    this.timer = setInterval(() => {
      this.beating = this.heartbeat().catch((error: Error) => {
        this.lastError = error.message;
      });
    }, HEARTBEAT_MS);
    // A test that forgets to stop a kubelet must not keep the test process alive.
    this.timer.unref();
  }

  async setReady(ready: boolean): Promise<void> {
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
    // Pods being deleted on this node: their containers are "gone", so they go (kubelet status manager).
    const pods = await apiJson<{
      items: { metadata: { name: string; namespace: string; uid: string; deletionTimestamp?: string } }[];
    }>(this.api, "GET", `/api/v1/pods?fieldSelector=spec.nodeName%3D${name}`);
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
  const kubelet = new FakeKubelet(node, conf, cp.binaries.kubernetesVersion);
  await kubelet.start(options.ready);
  return kubelet;
}
