// A stand-in for kube-scheduler (the suite builds no scheduler): binds the Pods that wait for a node,
// with the scheduler's own credentials (kubeadm's scheduler.conf, user system:kube-scheduler, whose
// RBAC allows bindings), through the binding subresource as kube-scheduler does. Its choice is the
// part of kube-scheduler's filters that matters here: a Ready, schedulable node, matching the Pod's
// nodeSelector and the node names of its required node affinity (DaemonSet Pods), whose
// NoSchedule and NoExecute taints the Pod tolerates; the first such node by name. Nothing is
// scored or preempted. The fake kubelets then "run" what is bound to them (kubelet.ts).

import * as path from "path";
import { ApiCredentials, apiJson, apiRequest, credentialsFromKubeconfig } from "./api";
import type { ControlPlane } from "./cluster";

const INTERVAL_MS = 1_000;

interface Taint {
  key: string;
  value?: string;
  effect: string;
}
interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
}
interface NodeObject {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { unschedulable?: boolean; taints?: Taint[] };
  status: { conditions?: { type: string; status: string }[] };
}
interface PendingPod {
  metadata: { name: string; namespace: string };
  spec: {
    nodeSelector?: Record<string, string>;
    tolerations?: Toleration[];
    affinity?: {
      nodeAffinity?: {
        requiredDuringSchedulingIgnoredDuringExecution?: {
          nodeSelectorTerms: { matchFields?: { key: string; operator: string; values?: string[] }[] }[];
        };
      };
    };
  };
}

/** Toleration semantics of k8s.io/api/core/v1 Toleration.ToleratesTaint. */
export function tolerates(tolerations: readonly Toleration[], taint: Taint): boolean {
  return tolerations.some(
    (t) =>
      (!t.effect || t.effect === taint.effect) &&
      (t.operator === "Exists"
        ? !t.key || t.key === taint.key
        : t.key === taint.key && (t.value ?? "") === (taint.value ?? "")),
  );
}

function fits(pod: PendingPod, node: NodeObject): boolean {
  const ready = node.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  if (!ready || node.spec.unschedulable) return false;
  const labels = node.metadata.labels ?? {};
  if (Object.entries(pod.spec.nodeSelector ?? {}).some(([k, v]) => labels[k] !== v)) return false;
  const terms =
    pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  const names = terms.flatMap((term) =>
    (term.matchFields ?? [])
      .filter((f) => f.key === "metadata.name" && f.operator === "In")
      .flatMap((f) => f.values ?? []),
  );
  if (names.length > 0 && !names.includes(node.metadata.name)) return false;
  return (node.spec.taints ?? [])
    .filter((t) => t.effect === "NoSchedule" || t.effect === "NoExecute")
    .every((t) => tolerates(pod.spec.tolerations ?? [], t));
}

export class FakeScheduler {
  private readonly api: ApiCredentials;
  private timer: NodeJS.Timeout | undefined;
  private cycle: Promise<void> = Promise.resolve();
  /** "<namespace>/<pod> -> <node>" for every binding made. */
  readonly bound: string[] = [];
  lastError = "";

  constructor(cp: ControlPlane) {
    this.api = credentialsFromKubeconfig(path.join(cp.first.kubernetesDir, "scheduler.conf"));
  }

  start(): void {
    this.timer = setInterval(() => {
      this.cycle = this.schedule().catch((error: Error) => {
        this.lastError = error.message;
      });
    }, INTERVAL_MS);
    this.timer.unref();
  }

  private async schedule(): Promise<void> {
    const pending = await apiJson<{ items: PendingPod[] }>(
      this.api,
      "GET",
      `/api/v1/pods?fieldSelector=${encodeURIComponent("spec.nodeName=,status.phase=Pending")}`,
    );
    if (pending.items.length === 0) return;
    const nodes = (await apiJson<{ items: NodeObject[] }>(this.api, "GET", "/api/v1/nodes")).items.sort((a, b) =>
      a.metadata.name.localeCompare(b.metadata.name),
    );
    for (const pod of pending.items) {
      const node = nodes.find((n) => fits(pod, n));
      if (!node) continue;
      const { name, namespace } = pod.metadata;
      const bound = await apiRequest(this.api, "POST", `/api/v1/namespaces/${namespace}/pods/${name}/binding`, {
        apiVersion: "v1",
        kind: "Binding",
        metadata: { name, namespace },
        target: { apiVersion: "v1", kind: "Node", name: node.metadata.name },
      });
      // 409: bound meanwhile, or gone.
      if (bound.status !== 201 && bound.status !== 409 && bound.status !== 404) {
        throw new Error(`binding ${namespace}/${name}: HTTP ${bound.status}: ${bound.body.slice(0, 300)}`);
      }
      if (bound.status === 201) this.bound.push(`${namespace}/${name} -> ${node.metadata.name}`);
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.cycle;
  }
}
