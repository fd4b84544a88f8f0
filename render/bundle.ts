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
//
// Two properties keep a step whole when its SSH session is not (pulumi-command keeps no hold on a
// command once it runs: customTimeouts never stop it, remote/commandOutputs.go runs session.Run
// without the context, and a dropped connection closes the pipes the script writes to):
// - the whole bundle is one function, called on its last line: bash reads the function to its end
//   before running anything (a compound command is parsed whole), so a session lost while the
//   bundle streams in runs nothing, and one lost mid-step cannot keep the cleanup lines unread;
// - the script runs under `timeout -k STEP_KILL_GRACE_SECONDS <budget>` (the budget the step is
//   allowed, render/steps.ts stepBudgetSeconds), and its stdout and stderr go through `tee -p`
//   into files of the stage (stdout, stderr) and on to the session: tee -p ignores SIGPIPE and
//   keeps writing the files when the session's pipe breaks (GNU coreutils, --output-error=
//   warn-nopipe), so the script never writes into a dead pipe and finishes, logged. Without a
//   terminal sshd sends no SIGHUP.

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
  /** Seconds the script may run before `timeout` stops it (TERM, KILL after the grace); none: unbounded. */
  readonly budgetSeconds?: number;
}

/** Seconds between `timeout`'s TERM at the end of a step's budget and its KILL. */
export const STEP_KILL_GRACE_SECONDS = 60;
/** The name of the function a bundle is wrapped in. */
const BUNDLE_FUNCTION = "ha_k8s_bundle";

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
  const budget = input.budgetSeconds;
  if (budget !== undefined && !(Number.isInteger(budget) && budget > 0)) {
    throw new Error(`budget ${budget} of step ${input.stepId} is not a positive whole number of seconds`);
  }
  const script = `(set -a && . "$stage/env" && set +a && HA_K8S_STAGE="$stage" exec `;
  // Without a budget (login checks where `pulumi up` runs, which may be macOS: no GNU timeout or
  // tee -p there; delete commands, bounded by their own timeout) the script writes to the session.
  const runLines =
    budget === undefined
      ? [`${script}bash "$stage/${input.script}") </dev/null || rc=$?`]
      : [
          "# The script's stdout and stderr reach the session through tee -p, which also keeps them in",
          "# $stage/stdout and $stage/stderr and outlives a lost session (pipefail: the script's status).",
          `{ ${script}timeout -k ${STEP_KILL_GRACE_SECONDS} ${budget} bash "$stage/${input.script}") ` +
            `</dev/null 2>&1 1>&3 3>&- | tee -p -a "$stage/stderr" >&2; } 3>&1 | tee -p -a "$stage/stdout" || rc=$?`,
        ];
  return [
    "#!/usr/bin/env bash",
    `# ha-k8s step ${input.stepId}: stages its files in ${temporary ? "a temporary directory" : dir} and runs ${input.script}` +
      `${budget === undefined ? "" : ` for at most ${budget} s`}.`,
    "# Rendered by render/bundle.ts from scripts/; edit those, not this.",
    "# One function, called on the last line: bash has read all of it before anything runs.",
    `${BUNDLE_FUNCTION}() {`,
    "set -euo pipefail",
    "umask 077",
    ...stageLines,
    ...["lib.sh", input.script, ...(input.extraScripts ?? [])].map((name) => heredoc(name, source(name), 0o700)),
    heredoc("env", env, 0o600),
    ...(input.files ?? []).map((file) => heredoc(file.name, file.content, file.mode)),
    "rc=0",
    "# shellcheck source=/dev/null # the step's inputs, written just above",
    ...runLines,
    ...(secrets.length > 0 ? [`rm -f ${secrets.join(" ")}`] : []),
    'exit "$rc"',
    "}",
    `${BUNDLE_FUNCTION} "$@"`,
    "",
  ].join("\n");
}
