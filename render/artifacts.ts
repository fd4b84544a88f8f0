// Everything `pulumi up` would put on machines, as files keyed by their path in the render output.
// The CLI writes them, the artifact suite feeds them to the real consumers (kubeadm, haproxy,
// shellcheck), and the components call the same renderers. Pure: script sources are passed in.

import { renderCloudConfig } from "./cloudinit";
import { ClusterConfig } from "./config";
import { renderHaproxyForPlan } from "./haproxy";
import { DeployedState, Plan, buildPlan, runsOnDeployer, runsOnMachine } from "./plan";
import { RENDER_PLACEHOLDERS } from "./secrets";
import { DeployValues, renderStepCommand, stepTraits } from "./steps";

/**
 * What consumes a file, so the artifact suite knows which real tool checks it:
 * kubeadm-config → `kubeadm config validate`; haproxy-config → `haproxy -c`; script → `bash -n` +
 * shellcheck; manifest → YAML parse + consistency with the config; cloud-config → cloud-init's schema
 * and `sshd -t` on the sshd drop-in; registries-config → TOML parse + the mirror it names;
 * systemd-unit → `systemd-analyze verify` (and `systemd-analyze calendar` on a timer's schedule); plan →
 * JSON; other → nothing.
 */
export type RenderedKind =
  | "plan"
  | "kubeadm-config"
  | "haproxy-config"
  | "script"
  | "manifest"
  | "cloud-config"
  | "registries-config"
  | "systemd-unit"
  | "other";

export interface RenderedFile {
  /** Path relative to the output directory, e.g. "plan.json" or "ha-k8s-cp-1/02-init.sh". */
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

/**
 * Renders the plan and, per machine, the cloud-config it boots with and every step bundle in run order
 * (`<node>/<NN>-<step>.sh`, exactly what is piped to `sudo bash -s`) with the files it stages
 * (`<node>/<NN>-<step>/<file>`) and the command its deletion runs (`<node>/<NN>-<step>.on-delete.sh`);
 * the login checks that run where `pulumi up` runs are under `deployer/`. Deploy-time values default
 * to clear placeholders.
 */
export function renderAll(
  config: ClusterConfig,
  scriptSources: Readonly<Record<string, string>>,
  values: DeployValues = RENDER_PLACEHOLDERS,
  /** What the stack's last deployment left: with an older version, the plan holds the upgrade. */
  deployed: DeployedState = {},
): RenderResult {
  const plan = buildPlan(config, deployed);
  const files: RenderedFile[] = [
    { path: "loadbalancer/haproxy.cfg", content: renderHaproxyForPlan(plan), mode: 0o644, kind: "haproxy-config" },
  ];
  for (const node of plan.nodes) {
    files.push({
      path: `${node.name}/00-cloud-config.yaml`,
      content: renderCloudConfig(),
      mode: 0o644,
      kind: "cloud-config",
    });
  }
  const counters = new Map<string, number>();
  const stepFiles = new Map<string, { script?: string; onDelete?: string }>();
  for (const step of plan.steps) {
    if (!runsOnMachine(step) && !runsOnDeployer(step)) continue;
    const command = renderStepCommand(config, plan, step, stepTraits(step).secret ? values : undefined, scriptSources);
    const n = (counters.get(step.node) ?? 0) + 1;
    counters.set(step.node, n);
    const about = step.subject === step.node || step.subject === "cluster" ? "" : `-${step.subject}`;
    const base = `${step.node}/${String(n).padStart(2, "0")}-${step.kind}${about}`;
    if (command.bundle !== undefined) {
      files.push({ path: `${base}.sh`, content: command.bundle, mode: 0o755, kind: "script" });
    }
    for (const staged of command.files) {
      files.push({ path: `${base}/${staged.name}`, content: staged.content, mode: staged.mode, kind: staged.kind });
    }
    // What `pulumi destroy` (or a scale-down) runs on that machine, as a script of its own.
    if (command.deleteCommand !== undefined) {
      files.push({
        path: `${base}.on-delete.sh`,
        content: `#!/usr/bin/env bash\n${command.deleteCommand}`,
        mode: 0o755,
        kind: "script",
      });
    }
    stepFiles.set(step.id, {
      script: command.bundle !== undefined ? `${base}.sh` : undefined,
      onDelete: command.deleteCommand,
    });
  }
  const planJson = { ...plan, steps: plan.steps.map((s) => ({ ...s, ...stepFiles.get(s.id) })) };
  files.unshift({ path: "plan.json", content: `${JSON.stringify(planJson, null, 2)}\n`, mode: 0o644, kind: "plan" });
  return { plan, files };
}
