// The lab's test stack: the repository's dev stack (3 control planes, 2 workers, 1 HAProxy VM) as
// `pulumi up` would resolve it, pointed at the lab's mirror with the project's own mirror keys
// (packages, images, Calico's manifests), and the deploy-time values made the way the program makes
// them: the cluster CA as components/pki.ts makes it, the join token and certificate key derived
// from a fresh seed as render/secrets.ts derives them, an ED25519 SSH key (components/access.ts),
// and the external address in a documentation range (RFC 5737).

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ClusterConfig, RawConfig, formatIssues, resolveConfig } from "../../../render/config";
import { DeployedState, Plan, buildPlan } from "../../../render/plan";
import { readProjectFile, readStackFile } from "../../../render/project";
import { readScriptSources } from "../../../render/scripts";
import { caCertHash } from "../../../render/secrets";
import { DeployValues } from "../../../render/steps";
import { registerSecret } from "../../control-plane/exec";
import { createClusterCa } from "../../control-plane/pki";
import { makeTestTokens } from "../../control-plane/stack";
import { TEST_EXTERNAL_IP, TEST_STACK } from "../../control-plane/stack";
import { MIRROR_IP } from "./lab";

/** The mirror keys pointing at the lab's mirror (tests/cluster/lab/artifacts.sh lays it out). */
export function labMirrorConfig(repoKey: string): RawConfig {
  return {
    kubernetesPackageMirror: `https://${MIRROR_IP}/kubernetes`,
    // One repository's key given in the configuration, the other's downloaded from it: both paths.
    kubernetesPackageKey: repoKey,
    crioPackageMirror: `https://${MIRROR_IP}/opensuse`,
    registryMirror: MIRROR_IP,
    calicoManifestMirror: `https://${MIRROR_IP}/calico`,
    etcdReleaseMirror: `https://${MIRROR_IP}/etcd`,
  };
}

/** The stack's configuration: the repository stack's values, the lab's mirrors, then `overrides`. */
export function labStackConfig(repoKey: string, overrides: RawConfig = {}, stack = TEST_STACK): ClusterConfig {
  const resolved = resolveConfig(
    { ...readStackFile(stack), ...labMirrorConfig(repoKey), ...overrides },
    readProjectFile().defaults,
  );
  if (!resolved.config) throw new Error(formatIssues(`the lab's ${stack} stack does not validate:`, resolved.errors));
  return resolved.config;
}

export interface LabSecrets {
  readonly values: DeployValues;
  readonly sshPublicKey: string;
}

/** Deploy-time values for a new stack (every secret registered for redaction). */
export async function makeSecrets(dir: string, clusterName: string): Promise<LabSecrets> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createClusterCa(path.join(dir, "pki"), clusterName);
  const tokens = makeTestTokens();
  const keyFile = path.join(dir, "ssh-key");
  fs.rmSync(keyFile, { force: true });
  const keygen = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "ha-k8s-lab", "-f", keyFile]);
  if (keygen.status !== 0) throw new Error(`ssh-keygen failed: ${keygen.stderr}`);
  const sshPrivateKey = fs.readFileSync(keyFile, "utf8");
  for (const line of sshPrivateKey.split("\n")) if (line && !line.startsWith("-----")) registerSecret(line);
  return {
    values: {
      ...tokens,
      caCertHash: caCertHash(ca.certPem),
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      controlPlaneKeys: ca.controlPlaneKeys,
      externalIp: TEST_EXTERNAL_IP,
      sshPrivateKey,
    },
    sshPublicKey: fs.readFileSync(`${keyFile}.pub`, "utf8"),
  };
}

export interface LabStack {
  readonly config: ClusterConfig;
  readonly plan: Plan;
  readonly sources: Readonly<Record<string, string>>;
}

export function labStack(config: ClusterConfig, deployed: DeployedState = {}): LabStack {
  return { config, plan: buildPlan(config, deployed), sources: readScriptSources() };
}
