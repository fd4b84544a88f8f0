// The stack the control-plane tests deploy: a repository stack (dev by default) exactly as the
// render sees it, with real deploy-time values instead of placeholders: the cluster CA made like
// components/pki.ts, a bootstrap token and certificate key from render/secrets.ts's derivation of a
// fresh random seed, and a documentation address (RFC 5737) as the load balancer's external IP.
// Everything the tests run on a "machine" comes from these rendered files.

import { generateKeyPairSync, randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { RenderedFile, renderAll } from "../../render/artifacts";
import { ClusterConfig, formatIssues, resolveConfig } from "../../render/config";
import { DeployedState, Plan, PlannedNode, Step, StepKind } from "../../render/plan";
import { readProjectFile, readStackFile } from "../../render/project";
import { readScriptSources } from "../../render/scripts";
import { caCertHash, deriveJoinTokens, deriveOutputKey } from "../../render/secrets";
import { DeployValues } from "../../render/steps";
import { registerSecret } from "./exec";
import { ClusterCa } from "./pki";

export const TEST_STACK = "dev";
/** TEST-NET-3 (RFC 5737): a real address form for certSANs that is never routed. */
export const TEST_EXTERNAL_IP = "203.0.113.7";

/** A step of plan.json with the bundle that runs it and the command its deletion runs. */
export interface RenderedStep extends Step {
  /** Path of the bundle, relative to the render directory; none for delete-only steps. */
  readonly script?: string;
  readonly onDelete?: string;
}

export interface TestStack {
  readonly name: string;
  readonly config: ClusterConfig;
  readonly plan: Plan;
  readonly values: DeployValues;
  /** Where the render was written (as `npm run render` writes it). */
  readonly dir: string;
  readonly files: readonly RenderedFile[];
  readonly steps: readonly RenderedStep[];
  readonly controlPlanes: readonly PlannedNode[];
  readonly workers: readonly PlannedNode[];
  node(name: string): PlannedNode;
  /** The one step of this kind about this subject (a node name, "workers" or "cluster"). */
  step(kind: StepKind, subject: string): RenderedStep;
  /** Absolute path of a step's bundle. */
  bundle(step: RenderedStep): string;
  /** Absolute path of a file a step stages, as rendered next to its bundle. */
  staged(step: RenderedStep, name: string): string;
}

/** The stack's configuration as `pulumi up` would resolve it (Pulumi.yaml defaults + stack file). */
export function testStackConfig(stack: string = TEST_STACK, kubernetesMinor?: string): ClusterConfig {
  const values = readStackFile(stack);
  const resolved = resolveConfig(
    kubernetesMinor ? { ...values, kubernetesVersion: kubernetesMinor } : values,
    readProjectFile().defaults,
  );
  if (!resolved.config) throw new Error(formatIssues(`stack ${stack} does not validate:`, resolved.errors));
  return resolved.config;
}

/**
 * Renders the stack as `npm run render` does; with `deployed` (what the stack's last deployment
 * left, e.g. an older kubernetesVersion), the plan holds that change (an upgrade's steps).
 */
/**
 * The token, certificate key and output key, derived from a fresh seed as components/pki.ts derives
 * them, each registered for redaction as it is and as a Secret's data shows it (base64).
 */
export function makeTestTokens(): Pick<DeployValues, "bootstrapToken" | "certificateKey" | "outputKey"> {
  const seed = randomBytes(32).toString("hex");
  const tokens = { ...deriveJoinTokens(seed), outputKey: deriveOutputKey(seed) };
  for (const secret of [
    tokens.bootstrapToken,
    tokens.bootstrapToken.split(".")[1],
    tokens.certificateKey,
    tokens.outputKey,
  ]) {
    registerSecret(secret);
    registerSecret(Buffer.from(secret).toString("base64"));
  }
  return tokens;
}

export function renderTestStack(
  dir: string,
  ca: ClusterCa,
  config: ClusterConfig,
  name = TEST_STACK,
  deployed: DeployedState = {},
): TestStack {
  const tokens = makeTestTokens();
  // Only the login checks (run where `pulumi up` runs, not here) stage the SSH key.
  const sshPrivateKey = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const values: DeployValues = {
    ...tokens,
    caCertHash: caCertHash(ca.certPem),
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    controlPlaneKeys: ca.controlPlaneKeys,
    externalIp: TEST_EXTERNAL_IP,
    sshPrivateKey,
  };
  const { plan, files } = renderAll(config, readScriptSources(), values, deployed);
  for (const file of files) {
    const target = path.join(dir, file.path);
    fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
    fs.writeFileSync(target, file.content, { mode: file.mode });
  }
  const planJson = files.find((f) => f.path === "plan.json");
  if (!planJson) throw new Error("the render has no plan.json");
  const steps = (JSON.parse(planJson.content) as { steps: RenderedStep[] }).steps.filter(
    (s) => s.script !== undefined || s.onDelete !== undefined,
  );
  const node = (nodeName: string): PlannedNode => {
    const found = plan.nodes.find((n) => n.name === nodeName);
    if (!found) throw new Error(`the plan has no node ${nodeName}`);
    return found;
  };
  return {
    name,
    config,
    plan,
    values,
    dir,
    files,
    steps,
    controlPlanes: plan.nodes.filter((n) => n.role === "control-plane"),
    workers: plan.nodes.filter((n) => n.role === "worker"),
    node,
    step(kind, subject) {
      const found = steps.filter((s) => s.kind === kind && s.subject === subject);
      if (found.length !== 1) {
        throw new Error(
          `expected one ${kind} step about ${subject}, found ${found.map((s) => s.id).join(", ") || "none"}`,
        );
      }
      return found[0];
    },
    bundle(step) {
      if (!step.script) throw new Error(`${step.id} has no bundle (delete-only)`);
      return path.join(dir, step.script);
    },
    staged(step, fileName) {
      if (!step.script) throw new Error(`${step.id} stages no files (delete-only)`);
      return path.join(dir, step.script.replace(/\.sh$/, ""), fileName);
    },
  };
}
