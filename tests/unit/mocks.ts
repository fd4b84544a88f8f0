// Mock provider behaviour shared by the jest harness (harness.ts) and the out-of-jest runner
// (run-program.ts). No jest APIs here.

import { FAKE_ADMIN_CONF, TEST_CA_CERT, sealLikeKubeconfigSh } from "./fixtures";
import { deriveOutputKey } from "../../render/secrets";

/** The mocks' tls.PrivateKey privateKeyOpenssh for a resource name. */
const fakeOpenssh = (name: string) =>
  `-----BEGIN OPENSSH PRIVATE KEY-----\nfake-${name}-${"k".repeat(40)}\n-----END OPENSSH PRIVATE KEY-----\n`;

/** Stack values; undefined removes a key (gcp:project is set unless removed). */
export type ConfigValues = Record<string, string | number | readonly string[] | undefined>;

/** Stack config as the Pulumi runtime holds it: namespaced keys, string values. */
export function stackConfig(values: ConfigValues): Record<string, string> {
  const config: Record<string, string> = { "gcp:project": "ha-k8s-test-project" };
  for (const [key, value] of Object.entries(values)) {
    const name = key.includes(":") ? key : `ha-k8s:${key}`;
    if (value === undefined) delete config[name];
    else config[name] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return config;
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";

export function unwrapSecrets(value: unknown): { value: unknown; secret: boolean } {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    if (obj[SECRET_SIG] === "1b47061264138c4ac30d75fd1eb44270")
      return { value: unwrapSecrets(obj.value).value, secret: true };
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) out[k] = unwrapSecrets(v).value;
    return { value: out, secret: false };
  }
  if (Array.isArray(value)) return { value: value.map((v) => unwrapSecrets(v).value), secret: false };
  return { value, secret: false };
}

/** Computed state the mock provider returns, where the program reads it. */
function fakeState(type: string, name: string, inputs: Record<string, unknown>): Record<string, unknown> {
  switch (type) {
    case "gcp:compute/address:Address":
      return { ...inputs, address: inputs.address ?? `203.0.113.${(name.length * 7) % 250}` };
    case "gcp:compute/instance:Instance":
      return { ...inputs, instanceId: `id-${name}`, selfLink: `https://compute/${name}` };
    case "gcp:storage/bucket:Bucket":
      // Pulumi names a bucket without a name: <resource name>-<7 random hex digits>.
      return { ...inputs, name: inputs.name ?? `${name}-0a1b2c3` };
    case "gcp:serviceaccount/account:Account":
      return { ...inputs, email: `${inputs.accountId}@project.iam.gserviceaccount.com` };
    case "tls:index/privateKey:PrivateKey":
      return {
        ...inputs,
        privateKeyOpenssh: fakeOpenssh(name),
        privateKeyPem: `-----BEGIN PRIVATE KEY-----\nfake-${name}\n-----END PRIVATE KEY-----\n`,
        publicKeyOpenssh: `ssh-ed25519 AAAAfake${name}`,
        publicKeyPem: `-----BEGIN PUBLIC KEY-----\nfake-${name}\n-----END PUBLIC KEY-----\n`,
      };
    case "tls:index/selfSignedCert:SelfSignedCert":
      return { ...inputs, certPem: TEST_CA_CERT };
    case "command:remote:Command":
      return {
        ...inputs,
        // kubeconfig.sh's sealed admin.conf, with the key the program derives from its join seed.
        stdout: name.endsWith("-cp-1-kubeconfig")
          ? sealLikeKubeconfigSh(
              FAKE_ADMIN_CONF,
              deriveOutputKey(fakeOpenssh(name.replace(/-cp-1-kubeconfig$/, "-pki-join-seed"))),
            )
          : "",
        stderr: "",
      };
    default:
      return inputs;
  }
}

/** What the mock provider answers for a new resource. */
export function mockResponse(
  type: string,
  name: string,
  inputs: Record<string, unknown>,
  previousOutputs: Record<string, unknown> | undefined,
): { id: string; state: Record<string, unknown> } {
  if (type === "pulumi:pulumi:StackReference") {
    // The stack's own outputs from its previous deployment (none on the first).
    return { id: String(inputs.name), state: { outputs: previousOutputs ?? {} } };
  }
  return { id: `${name}-id`, state: fakeState(type, name, inputs) };
}
