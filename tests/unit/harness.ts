// Runs the real program (index.ts) under Pulumi mocks and records every resource with its inputs
// and the options Pulumi received (dependsOn, secrets, replacement), by listening on the SDK's own
// registerResource. Also models what the engine would do between two runs (create / update /
// replace / delete), which mocks alone cannot show.

import * as pulumi from "@pulumi/pulumi";
import { ConfigValues, mockResponse, stackConfig, unwrapSecrets } from "./mocks";
import type { KubernetesRelease } from "../../render/versions";

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
  readonly retainOnDelete: boolean;
  /** Names this resource had before (aliases by name). */
  readonly aliases: readonly string[];
  /** The resource it is deleted with (`deletedWith`), by name. */
  readonly deletedWith?: string;
}

export interface ProgramRun {
  readonly resources: readonly RecordedResource[];
  readonly outputs: Record<string, unknown>;
  /** Output names that are secrets. */
  readonly secretOutputs: readonly string[];
  /**
   * The resources each output waits for. The Node SDK registers the stack's outputs together, once
   * all have resolved, so when one of these fails, none is registered and the stack keeps the last
   * successful update's outputs (pulumi/pulumi#15754).
   */
  readonly outputDependsOn: Readonly<Record<string, readonly string[]>>;
  readonly warnings: readonly string[];
  byName(name: string): RecordedResource;
  ofType(type: string): RecordedResource[];
}

/**
 * Runs index.ts once with the given stack values (project keys without namespace, provider keys
 * with it) on top of Pulumi.yaml's defaults. Each call evaluates the program afresh.
 */
/** Runs the program expecting it to fail; returns the failure (message and what it had registered). */
export async function failedRun(...args: Parameters<typeof runProgram>): Promise<ProgramFailure> {
  try {
    await runProgram(...args);
  } catch (error) {
    return error as ProgramFailure;
  }
  throw new Error("the program succeeded; a failure was expected");
}

// Jest's own failure reports need whole stack traces; the program would shorten them (index.ts).
process.env.HA_K8S_FULL_STACK_TRACES = "1";

export async function runProgram(
  values: ConfigValues = {},
  options: {
    preview?: boolean;
    previousOutputs?: Record<string, unknown>;
    /** Pins of render/versions.ts as another release of this program would have them. */
    pins?: Record<string, Partial<KubernetesRelease>>;
  } = {},
): Promise<ProgramRun> {
  const config = stackConfig(values);
  const recorded = new Map<string, RecordedResource>();
  const optionsByName = new Map<string, Omit<RecordedResource, "inputs" | "secretInputs">>();
  const warnings: string[] = [];

  let result: ProgramRun | undefined;
  try {
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
              retainOnDelete: opts?.retainOnDelete ?? false,
              aliases: opts?.aliases ?? [],
              deletedWith: opts?.deletedWith,
            });
            return mockResponse(args.type, args.name, unwrapped, options.previousOutputs);
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
            retainOnDelete: Boolean(opts.retainOnDelete),
            aliases: (opts.aliases ?? []).flatMap((alias) => {
              const name = (alias as { name?: unknown }).name;
              return typeof name === "string" ? [name] : [];
            }),
            deletedWith: opts.deletedWith ? named(opts.deletedWith) : undefined,
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
        // This run's own module registry (jestIsolated): the change stays in it.
        const versions = await import("../../render/versions");
        for (const [minor, pin] of Object.entries(options.pins ?? {})) {
          Object.assign(versions.SUPPORTED_KUBERNETES[minor], pin);
        }
        const program: Record<string, unknown> = await (await import("../../index")).default();
        const outputs: Record<string, unknown> = {};
        const secretOutputs: string[] = [];
        const outputDependsOn: Record<string, string[]> = {};
        // Settle every output (Output.promise() is internal, but unlike apply() it rejects when the
        // output's computation failed, e.g. a guard refusing a change), then report the first failure.
        const entries = Object.entries(program);
        const settled = await Promise.allSettled(
          entries.map(async ([key, value]) => {
            if (!sdk.Output.isInstance(value)) return [key, value, false] as const;
            const output = value as pulumi.Output<unknown>;
            // promise() and allResources() are internal to Output (output.js), and public ways lose
            // rejections and dependencies.
            const internal = output as unknown as {
              promise(): Promise<unknown>;
              allResources(): Promise<Set<{ __name?: string }>>;
            };
            const [resolved, secret, resources] = await Promise.all([
              internal.promise(),
              sdk.isSecret(output),
              internal.allResources(),
            ]);
            outputDependsOn[key] = [...resources].map((r) => r.__name ?? "?").sort();
            return [key, resolved, secret] as const;
          }),
        );
        for (const outcome of settled) {
          if (outcome.status === "rejected") throw outcome.reason;
          const [key, resolved, secret] = outcome.value;
          outputs[key] = resolved;
          if (secret) secretOutputs.push(key);
        }
        // Let outstanding registrations reach the mock monitor.
        await new Promise((resolve) => setTimeout(resolve, 0));
        const resources = [...recorded.values()];
        result = {
          resources,
          outputs,
          secretOutputs,
          outputDependsOn,
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
  } catch (error) {
    // The stack's reference to itself is a read, not a resource the engine would create.
    const registered = [...recorded.values()].filter((r) => r.type !== "pulumi:pulumi:StackReference");
    throw Object.assign(error as Error, { registered });
  } finally {
    // Let outstanding mock registrations finish before the next run.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return result!;
}

/** A failed program run, with the resources it had registered with the engine before failing. */
export type ProgramFailure = Error & { registered: RecordedResource[] };

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
    // An alias makes the engine take the resource under a former name for this one.
    const former = old.has(key(r)) ? undefined : r.aliases.map((name) => `${r.type}::${name}`).find((k) => old.has(k));
    const previous = old.get(key(r)) ?? (former ? old.get(former) : undefined);
    if (former) old.delete(former);
    if (!previous) {
      changes.set(r.name, "create");
      continue;
    }
    old.delete(key(r));
    // ignoreChanges: the engine keeps the old value of an ignored input, so it never differs.
    const before = withoutPaths(previous.inputs, r.ignoreChanges);
    const now = withoutPaths(r.inputs, r.ignoreChanges);
    const changed = Object.keys({ ...before, ...now }).filter(
      (k) => JSON.stringify(before[k]) !== JSON.stringify(now[k]),
    );
    const replacing = changed.filter((k) => forcesReplace(r, k));
    changes.set(r.name, replacing.length > 0 ? "replace" : changed.length > 0 ? "update" : "same");
  }
  for (const r of old.values()) changes.set(r.name, "delete");
  return changes;
}

function withoutPaths(inputs: Record<string, unknown>, paths: readonly string[]): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(inputs)) as Record<string, unknown>;
  for (const path of paths) {
    const parts = path.split(".");
    let node: unknown = copy;
    for (const part of parts.slice(0, -1)) node = (node as Record<string, unknown> | undefined)?.[part];
    if (node && typeof node === "object") delete (node as Record<string, unknown>)[parts[parts.length - 1]];
  }
  return copy;
}

function forcesReplace(r: RecordedResource, input: string): boolean {
  if (input === "triggers") return true;
  if (r.type === "gcp:compute/instance:Instance") {
    // Inputs GCE cannot change on a running instance (ignored inputs never reach here).
    if (["zone", "name", "bootDisk", "networkInterfaces"].includes(input)) return true;
  }
  if (r.type === "gcp:compute/address:Address" && input === "address") return true;
  return false;
}
