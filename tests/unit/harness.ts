// Runs the real program (index.ts) under Pulumi mocks and records every resource with its inputs
// and the options Pulumi received (dependsOn, secrets, replacement), by listening on the SDK's own
// registerResource. Also models what the engine would do between two runs (create / update /
// replace / delete), which mocks alone cannot show.

import * as pulumi from "@pulumi/pulumi";
import { FAKE_ADMIN_CONF, TEST_CA_CERT } from "./fixtures";

export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  readonly custom: boolean;
  /** Inputs as the mock monitor saw them (secrets unwrapped, see `secretInputs`). */
  readonly inputs: Record<string, unknown>;
  /** Top-level input names that arrived as secrets. */
  readonly secretInputs: readonly string[];
  readonly parent?: string;
  readonly dependsOn: readonly string[];
  readonly deleteBeforeReplace: boolean;
  readonly additionalSecretOutputs: readonly string[];
  readonly ignoreChanges: readonly string[];
}

export interface ProgramRun {
  readonly resources: readonly RecordedResource[];
  readonly outputs: Record<string, unknown>;
  /** Output names that are secrets. */
  readonly secretOutputs: readonly string[];
  readonly warnings: readonly string[];
  byName(name: string): RecordedResource;
  ofType(type: string): RecordedResource[];
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";

function unwrapSecrets(value: unknown): { value: unknown; secret: boolean } {
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
    case "gcp:serviceaccount/account:Account":
      return { ...inputs, email: `${inputs.accountId}@project.iam.gserviceaccount.com` };
    case "tls:index/privateKey:PrivateKey":
      return {
        ...inputs,
        privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\nfake-${name}-${"k".repeat(40)}\n-----END OPENSSH PRIVATE KEY-----\n`,
        privateKeyPem: `-----BEGIN PRIVATE KEY-----\nfake-${name}\n-----END PRIVATE KEY-----\n`,
        publicKeyOpenssh: `ssh-ed25519 AAAAfake${name}`,
      };
    case "tls:index/selfSignedCert:SelfSignedCert":
      return { ...inputs, certPem: TEST_CA_CERT };
    case "command:remote:Command":
      return {
        ...inputs,
        stdout: name.endsWith("kubeconfig") ? FAKE_ADMIN_CONF : "",
        stderr: "",
      };
    default:
      return inputs;
  }
}

type ConfigValues = Record<string, string | number | readonly string[]>;

/**
 * Runs index.ts once with the given stack values (project keys without namespace, provider keys
 * with it) on top of Pulumi.yaml's defaults. Each call evaluates the program afresh.
 */
export async function runProgram(
  values: ConfigValues = {},
  options: { preview?: boolean; previousOutputs?: Record<string, unknown> } = {},
): Promise<ProgramRun> {
  const config: Record<string, string> = { "gcp:project": "ha-k8s-test-project" };
  for (const [key, value] of Object.entries(values)) {
    config[key.includes(":") ? key : `ha-k8s:${key}`] = typeof value === "string" ? value : JSON.stringify(value);
  }
  const recorded = new Map<string, RecordedResource>();
  const optionsByName = new Map<string, Omit<RecordedResource, "inputs" | "secretInputs">>();
  const warnings: string[] = [];

  let result: ProgramRun | undefined;
  await jestIsolated(async () => {
    const sdk: typeof pulumi = await import("@pulumi/pulumi");
    const runtimeResource = await import("@pulumi/pulumi/runtime/resource");
    sdk.runtime.setAllConfig(config);
    await sdk.runtime.setMocks(
      {
        newResource: (args) => {
          const unwrapped: Record<string, unknown> = {};
          const secretInputs: string[] = [];
          for (const [k, v] of Object.entries(args.inputs as Record<string, unknown>)) {
            const u = unwrapSecrets(v);
            unwrapped[k] = u.value;
            if (u.secret) secretInputs.push(k);
          }
          const opts = optionsByName.get(`${args.type}::${args.name}`);
          recorded.set(`${args.type}::${args.name}`, {
            type: args.type,
            name: args.name,
            custom: true,
            inputs: unwrapped,
            secretInputs,
            parent: opts?.parent,
            dependsOn: opts?.dependsOn ?? [],
            deleteBeforeReplace: opts?.deleteBeforeReplace ?? false,
            additionalSecretOutputs: opts?.additionalSecretOutputs ?? [],
            ignoreChanges: opts?.ignoreChanges ?? [],
          });
          if (args.type === "pulumi:pulumi:StackReference") {
            // The stack's own outputs from its previous deployment (none on the first).
            return { id: String(unwrapped.name), state: { outputs: options.previousOutputs ?? {} } };
          }
          return { id: `${args.name}-id`, state: fakeState(args.type, args.name, unwrapped) };
        },
        call: (args) => args.inputs,
      },
      "ha-k8s",
      "test",
      options.preview ?? false,
      "organization",
    );
    // Record the options Pulumi receives, before the mock monitor is called.
    const original = runtimeResource.registerResource;
    const spy = jest
      .spyOn(runtimeResource, "registerResource")
      .mockImplementation((res, parent, t, name, custom, remote, newDependency, props, opts, ...rest) => {
        const named = (r: unknown) => (r as { __name?: string }).__name ?? "?";
        const deps = opts.dependsOn;
        const dependsOn = Array.isArray(deps) ? deps.map(named) : deps ? [named(deps)] : [];
        optionsByName.set(`${t}::${name}`, {
          type: t,
          name,
          custom,
          parent: opts.parent ? named(opts.parent) : undefined,
          dependsOn,
          deleteBeforeReplace: Boolean((opts as pulumi.CustomResourceOptions).deleteBeforeReplace),
          additionalSecretOutputs: (opts as pulumi.CustomResourceOptions).additionalSecretOutputs ?? [],
          ignoreChanges: opts.ignoreChanges ?? [],
        });
        if (!custom) {
          recorded.set(`${t}::${name}`, { ...optionsByName.get(`${t}::${name}`)!, inputs: {}, secretInputs: [] });
        }
        return original(res, parent, t, name, custom, remote, newDependency, props, opts, ...rest);
      });
    const warn = jest.spyOn(sdk.log, "warn").mockImplementation(async (message: string) => {
      warnings.push(message);
    });
    try {
      const program = (await import("../../index")) as Record<string, unknown>;
      const outputs: Record<string, unknown> = {};
      const secretOutputs: string[] = [];
      for (const [key, value] of Object.entries(program)) {
        if (sdk.Output.isInstance(value)) {
          outputs[key] = await new Promise((resolve) => (value as pulumi.Output<unknown>).apply(resolve));
          if (await sdk.isSecret(value as pulumi.Output<unknown>)) secretOutputs.push(key);
        } else {
          outputs[key] = value;
        }
      }
      // Let outstanding registrations reach the mock monitor.
      await new Promise((resolve) => setTimeout(resolve, 0));
      const resources = [...recorded.values()];
      result = {
        resources,
        outputs,
        secretOutputs,
        warnings,
        byName(name: string) {
          const found = resources.filter((r) => r.name === name);
          if (found.length !== 1) throw new Error(`expected one resource named ${name}, found ${found.length}`);
          return found[0];
        },
        ofType(type: string) {
          return resources.filter((r) => r.type === type);
        },
      };
    } finally {
      spy.mockRestore();
      warn.mockRestore();
    }
  });
  return result!;
}

async function jestIsolated(body: () => Promise<void>): Promise<void> {
  let failure: unknown;
  await jest.isolateModulesAsync(async () => {
    try {
      await body();
    } catch (error) {
      failure = error;
    }
  });
  if (failure) throw failure;
}

export type Change = "create" | "update" | "replace" | "delete" | "same";

/**
 * What `pulumi up` would do going from run `before` to run `after`, modelled on the engine:
 * a resource only in `after` is created, only in `before` deleted; a changed `triggers` input or a
 * changed input the provider cannot update in place (an Instance's name, zone, boot image, network
 * address) replaces it, unless the program ignores that input; any other changed input updates it.
 */
export function diffRuns(before: ProgramRun, after: ProgramRun): Map<string, Change> {
  const key = (r: RecordedResource) => `${r.type}::${r.name}`;
  const old = new Map(before.resources.filter((r) => r.custom).map((r) => [key(r), r]));
  const changes = new Map<string, Change>();
  for (const r of after.resources.filter((x) => x.custom)) {
    const previous = old.get(key(r));
    if (!previous) {
      changes.set(r.name, "create");
      continue;
    }
    old.delete(key(r));
    const changed = Object.keys({ ...previous.inputs, ...r.inputs }).filter(
      (k) => JSON.stringify(previous.inputs[k]) !== JSON.stringify(r.inputs[k]),
    );
    const replacing = changed.filter((k) => forcesReplace(r, k, previous));
    changes.set(r.name, replacing.length > 0 ? "replace" : changed.length > 0 ? "update" : "same");
  }
  for (const r of old.values()) changes.set(r.name, "delete");
  return changes;
}

function forcesReplace(r: RecordedResource, input: string, previous: RecordedResource): boolean {
  if (input === "triggers") return true;
  if (r.type === "gcp:compute/instance:Instance") {
    if (input === "zone" || input === "name") return !r.ignoreChanges.includes(input);
    if (input === "machineType") return false; // updated in place (or ignored)
    if (input === "bootDisk") {
      const image = (x: RecordedResource) =>
        JSON.stringify((x.inputs.bootDisk as { initializeParams?: { image?: string } })?.initializeParams?.image);
      return image(r) !== image(previous) && !r.ignoreChanges.includes("bootDisk.initializeParams.image");
    }
    if (input === "networkInterfaces") return true;
  }
  if (r.type === "gcp:compute/address:Address" && input === "address") return true;
  return false;
}
