// Everything `pulumi up` would put on machines, as files keyed by their path in the render output.
// The CLI writes them, the artifact tests feed them to the real consumers (kubeadm, haproxy,
// shellcheck), and the components use the same renderers. Pure: no Pulumi, no I/O.

import { ClusterConfig } from "./config";
import { Plan, buildPlan } from "./plan";

/**
 * What consumes a file, so the artifact suite knows which real tool checks it:
 * kubeadm-config → `kubeadm config validate`; haproxy-config → `haproxy -c`; script → `bash -n` +
 * shellcheck; manifest → YAML parse + consistency with the config; plan → JSON; other → nothing.
 */
export type RenderedKind = "plan" | "kubeadm-config" | "haproxy-config" | "script" | "manifest" | "other";

export interface RenderedFile {
  /** Path relative to the output directory, e.g. "plan.json" or "ha-k8s-cp-1/01-prepare.sh". */
  readonly path: string;
  readonly content: string;
  /** File mode, e.g. 0o755 for scripts. */
  readonly mode: number;
  readonly kind: RenderedKind;
}

export interface RenderResult {
  readonly plan: Plan;
  readonly files: readonly RenderedFile[];
}

export function renderAll(config: ClusterConfig): RenderResult {
  const plan = buildPlan(config);
  const files: RenderedFile[] = [
    { path: "plan.json", content: `${JSON.stringify(plan, null, 2)}\n`, mode: 0o644, kind: "plan" },
  ];
  return { plan, files };
}
