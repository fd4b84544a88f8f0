// A "bundle" is the one bash program a step pipes to `bash -s`: it stages lib.sh, the step's script
// and its rendered files in a root-only directory, writes the step's inputs to an `env` file there,
// runs the script with them, and removes the secret files again, whatever the outcome. Secrets
// travel as staged files (0600), never as arguments or environment (visible in /proc).
//
// Two kinds of stage: "machine" steps (create/update over SSH) keep a stage directory per step
// under /var/lib/ha-k8s/steps, emptied when the step starts, so it holds exactly the inputs of its
// last run: an optional file a later run no longer stages (registries-mirror.conf, a repository key,
// once their setting is unset) must not linger for the script to find; "temporary" bundles
// (delete-time actions, and login checks on the deploying machine) stage in a fresh mktemp directory
// that is removed when they end, so they depend on nothing left behind. Pure: script sources are
// passed in.

export interface StagedFile {
  /** File name inside the stage directory. */
  readonly name: string;
  readonly content: string;
  readonly mode: number;
  /** Removed as soon as the step's script has run (Pulumi sends it again on every run). */
  readonly secret?: boolean;
}

export interface BundleInput {
  /** Step id, e.g. "ha-k8s-cp-1/init"; names the stage directory. */
  readonly stepId: string;
  /** Script (in scripts/) to run. */
  readonly script: string;
  readonly env: Readonly<Record<string, string>>;
  readonly files?: readonly StagedFile[];
  /** Further scripts (in scripts/) the step installs on the machine; staged next to the others. */
  readonly extraScripts?: readonly string[];
  /** "machine" (default): a per-step directory that stays; "temporary": mktemp, removed at exit. */
  readonly stage?: "machine" | "temporary";
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
  const temporary = input.stage === "temporary";
  const dir = stageDir(input.stepId);
  // HA_K8S_ROOT is empty on machines; the script tests point it at a temporary root.
  const stageLines = temporary
    ? ['stage="$(mktemp -d)"', `trap 'rm -rf "$stage"' EXIT`]
    : [`stage="\${HA_K8S_ROOT:-}"${shellQuote(dir)}`, 'rm -rf "$stage"', 'mkdir -p "$stage"'];
  const env = Object.entries(input.env)
    .map(([key, value]) => `${key}=${shellQuote(value)}\n`)
    .join("");
  const secrets = temporary ? [] : (input.files ?? []).filter((f) => f.secret).map((f) => `"$stage/${f.name}"`);
  return [
    "#!/usr/bin/env bash",
    `# ha-k8s step ${input.stepId}: stages its files in ${temporary ? "a temporary directory" : dir} and runs ${input.script}.`,
    "# Rendered by render/bundle.ts from scripts/; edit those, not this.",
    "set -euo pipefail",
    "umask 077",
    ...stageLines,
    ...["lib.sh", input.script, ...(input.extraScripts ?? [])].map((name) => heredoc(name, source(name), 0o700)),
    heredoc("env", env, 0o600),
    ...(input.files ?? []).map((file) => heredoc(file.name, file.content, file.mode)),
    "rc=0",
    "# shellcheck source=/dev/null # the step's inputs, written just above",
    `(set -a && . "$stage/env" && set +a && HA_K8S_STAGE="$stage" exec bash "$stage/${input.script}") </dev/null || rc=$?`,
    ...(secrets.length > 0 ? [`rm -f ${secrets.join(" ")}`] : []),
    'exit "$rc"',
    "",
  ].join("\n");
}
