// A "bundle" is the one bash program a bootstrap step pipes to `sudo bash -s` over SSH: it stages
// lib.sh, the step's script(s) and its rendered files in a root-only directory, then runs the
// script with its inputs as environment variables. Secrets travel as staged files (0600), never as
// arguments or environment (visible in /proc). Pure: script sources are passed in.

export interface StagedFile {
  /** File name inside the stage directory. */
  readonly name: string;
  readonly content: string;
  readonly mode: number;
}

export interface BundleInput {
  /** Step id, e.g. "ha-k8s-cp-1/init"; names the stage directory. */
  readonly stepId: string;
  /** Script (in scripts/) to run. */
  readonly script: string;
  /** Further scripts to stage, e.g. the delete-time script run later by `delete`. */
  readonly stagedScripts?: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly files?: readonly StagedFile[];
}

export const STAGE_ROOT = "/var/lib/ha-k8s/steps";
const HEREDOC = "HA_K8S_EOF";

/** The stage directory of a step: its id with "/" turned into "--" so one level holds them all. */
export function stageDir(stepId: string): string {
  if (!/^[a-z0-9][a-z0-9./-]*$/.test(stepId) || stepId.includes("..")) {
    throw new Error(`step id "${stepId}" is not usable as a directory name`);
  }
  return `${STAGE_ROOT}/${stepId.replace(/\//g, "--")}`;
}

/** Single-quotes a value for bash; safe for any content. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function heredoc(target: string, content: string, mode: number): string {
  if (content.split("\n").includes(HEREDOC)) {
    throw new Error(`content for ${target} contains the heredoc terminator ${HEREDOC}`);
  }
  const body = content.endsWith("\n") ? content : `${content}\n`;
  return `cat > "$stage/${target}" <<'${HEREDOC}'\n${body}${HEREDOC}\nchmod ${mode.toString(8)} "$stage/${target}"\n`;
}

/**
 * Renders the bundle. `sources` maps script file names (lib.sh, prepare-node.sh, ...) to their
 * text, as read from scripts/.
 */
export function renderBundle(input: BundleInput, sources: Readonly<Record<string, string>>): string {
  const source = (name: string): string => {
    const text = sources[name];
    if (text === undefined) throw new Error(`no script ${name} in scripts/`);
    return text;
  };
  for (const key of Object.keys(input.env)) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(key)) throw new Error(`environment variable name "${key}" is not allowed`);
  }
  const dir = stageDir(input.stepId);
  const scripts = ["lib.sh", input.script, ...(input.stagedScripts ?? [])];
  const env = Object.entries(input.env)
    .map(([key, value]) => `${key}=${shellQuote(value)}`)
    .join(" \\\n  ");
  return [
    "#!/usr/bin/env bash",
    `# ha-k8s bootstrap step ${input.stepId}: stages its files in ${dir} and runs ${input.script}.`,
    "# Rendered by render/bundle.ts from scripts/; edit those, not this.",
    "set -euo pipefail",
    "umask 077",
    // HA_K8S_ROOT is empty on machines; the script tests point it at a temporary root.
    `stage="\${HA_K8S_ROOT:-}"${shellQuote(dir)}`,
    'mkdir -p "$stage"',
    ...scripts.map((name) => heredoc(name, source(name), 0o700)),
    ...(input.files ?? []).map((file) => heredoc(file.name, file.content, file.mode)),
    `exec env ${env ? `${env} \\\n  ` : ""}HA_K8S_STAGE="$stage" bash "$stage/${input.script}" </dev/null`,
    "",
  ].join("\n");
}
