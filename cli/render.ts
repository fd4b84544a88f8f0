// Offline render: `npm run render -- --stack dev --out DIR [--deployed-version 1.36]`. Reads
// Pulumi.yaml defaults and Pulumi.<stack>.yaml, validates with the same code and messages as
// `pulumi preview`, and writes what `pulumi up` would put on each machine. --deployed-version tells it
// what the running cluster runs (pulumi up reads it from the stack's last outputs): with an older
// one, the plan holds the upgrade. Needs no cloud and no Pulumi CLI.

import * as fs from "fs";
import * as path from "path";
import { formatIssues, resolveConfig } from "../render/config";
import { formatRefusal } from "../render/changes";
import { renderAll } from "../render/artifacts";
import { listStacks, readProjectFile, readStackFile } from "../render/project";
import { readScriptSources } from "../render/scripts";
import { upgradeProblems } from "../render/upgrade";

const USAGE =
  "usage: npm run render -- --stack <name> --out <dir> [--deployed-version <version the cluster runs, e.g. 1.36>] " +
  "[--project-dir <dir with Pulumi.yaml>]";

interface Options {
  stack: string;
  out: string;
  projectDir?: string;
  deployedVersion?: string;
}

function parseArgs(argv: readonly string[]): Options {
  const args: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      console.log(`${USAGE}\nstacks: ${listStacks().join(", ")}`);
      process.exit(0);
    }
    if (!flag.startsWith("--") || argv[i + 1] === undefined) throw new Error(`unexpected argument "${flag}"; ${USAGE}`);
    args[flag.slice(2)] = argv[++i];
  }
  const unknown = Object.keys(args).filter((k) => !["stack", "out", "project-dir", "deployed-version"].includes(k));
  if (unknown.length > 0) throw new Error(`unknown option --${unknown[0]}; ${USAGE}`);
  if (!args.stack || !args.out) throw new Error(USAGE);
  return {
    stack: args.stack,
    out: args.out,
    projectDir: args["project-dir"],
    deployedVersion: args["deployed-version"],
  };
}

export function main(argv: readonly string[]): number {
  let options: Options;
  let stackValues;
  try {
    options = parseArgs(argv);
    stackValues = readStackFile(options.stack, options.projectDir);
  } catch (error) {
    console.error(`render: ${(error as Error).message}`);
    return 2;
  }
  const resolved = resolveConfig(stackValues, readProjectFile(options.projectDir).defaults);
  for (const w of resolved.warnings) console.error(`warning: ${w.key}: ${w.message}`);
  if (!resolved.config) {
    console.error(formatIssues(`Invalid configuration for stack "${options.stack}":`, resolved.errors));
    return 1;
  }
  const { problems } = upgradeProblems({ kubernetesVersion: options.deployedVersion }, resolved.config);
  if (problems.length > 0) {
    console.error(formatRefusal(problems));
    return 1;
  }
  const { plan, files } = renderAll(resolved.config, readScriptSources(), undefined, {
    kubernetesVersion: options.deployedVersion,
  });
  const out = path.resolve(options.out);
  fs.mkdirSync(out, { recursive: true });
  for (const file of files) {
    const target = path.join(out, file.path);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, file.content, { mode: file.mode });
    fs.chmodSync(target, file.mode);
  }
  console.log(
    `rendered stack "${options.stack}": ${plan.nodes.length} machines, ${plan.firewall.length} firewall rules, ` +
      `${plan.steps.length} steps${plan.upgrade ? ` (an upgrade ${plan.upgrade.from} -> ${plan.upgrade.to})` : ""}, ` +
      `${files.length} files in ${out}`,
  );
  return 0;
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
