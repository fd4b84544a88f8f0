// Reads Pulumi.yaml (defaults) and Pulumi.<stack>.yaml (values) from disk. The Pulumi CLI applies
// Pulumi.yaml defaults itself, but unit tests (mocks) and the offline render run without it, so
// both read the defaults here: one source of truth for every consumer. No Pulumi imports.

import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { PROJECT, RawConfig } from "./config";

export const PROJECT_DIR = path.resolve(__dirname, "..");

export interface ProjectKeySchema {
  readonly type: string;
  readonly default?: unknown;
  readonly description?: string;
  readonly items?: { type: string };
}

export interface ProjectFile {
  readonly name: string;
  /** Project keys with their schema (un-namespaced, as written in Pulumi.yaml). */
  readonly schema: Readonly<Record<string, ProjectKeySchema>>;
  /** Defaults: project keys un-namespaced, provider keys ("gcp:region") as written. */
  readonly defaults: RawConfig;
}

function readYaml(file: string): unknown {
  return parse(fs.readFileSync(file, "utf8"));
}

export function readProjectFile(dir: string = PROJECT_DIR): ProjectFile {
  const doc = readYaml(path.join(dir, "Pulumi.yaml")) as {
    name?: string;
    config?: Record<string, unknown>;
  };
  const schema: Record<string, ProjectKeySchema> = {};
  const defaults: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(doc.config ?? {})) {
    if (key.includes(":")) {
      // Provider keys take a plain value or { value: ... } (Pulumi project file docs).
      defaults[key] =
        entry !== null && typeof entry === "object" && "value" in entry ? (entry as { value: unknown }).value : entry;
    } else {
      const s = entry as ProjectKeySchema;
      schema[key] = s;
      if (s.default !== undefined) defaults[key] = s.default;
    }
  }
  return { name: doc.name ?? "", schema, defaults };
}

/** Stack values from Pulumi.<stack>.yaml: "ha-k8s:x" becomes "x"; other namespaces stay as written. */
export function readStackFile(stack: string, dir: string = PROJECT_DIR): RawConfig {
  const file = path.join(dir, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) {
    const known = listStacks(dir);
    throw new Error(`no stack file ${file}; stacks in this project: ${known.join(", ") || "none"}`);
  }
  const doc = (readYaml(file) ?? {}) as { config?: Record<string, unknown> };
  return normaliseStackValues(doc.config ?? {});
}

export function normaliseStackValues(values: Readonly<Record<string, unknown>>): RawConfig {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    const unwrapped =
      value !== null && typeof value === "object" && !Array.isArray(value) && "value" in value
        ? (value as { value: unknown }).value
        : value;
    out[key.startsWith(`${PROJECT}:`) ? key.slice(PROJECT.length + 1) : key] = unwrapped;
  }
  return out;
}

export function listStacks(dir: string = PROJECT_DIR): string[] {
  return fs
    .readdirSync(dir)
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}
