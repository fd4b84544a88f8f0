// `npm run --silent parallel -- --stack dev`: prints the --parallel a deployment of that stack needs
// (render/parallelism.ts), for tools/deploy.sh, tools/destroy.sh and the workflows. Reads the same
// stack files and validates with the same code as the render; exit 1 on invalid config, 2 on usage.

import { formatIssues, resolveConfig } from "../render/config";
import { deployParallelism } from "../render/parallelism";
import { buildPlan } from "../render/plan";
import { listStacks, readProjectFile, readStackFile } from "../render/project";

const USAGE = "usage: npm run --silent parallel -- --stack <name> [--project-dir <dir with Pulumi.yaml>]";

export function main(argv: readonly string[]): number {
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    if (!["--stack", "--project-dir"].includes(argv[i]) || argv[i + 1] === undefined) {
      console.error(`parallel: unexpected argument "${argv[i]}"; ${USAGE}`);
      return 2;
    }
    args.set(argv[i], argv[i + 1]);
  }
  const stack = args.get("--stack");
  if (!stack) {
    console.error(`parallel: ${USAGE}`);
    return 2;
  }
  // A stack without a stack file has no config of its own yet: Pulumi.yaml's defaults, as pulumi sees it.
  const values = listStacks(args.get("--project-dir")).includes(stack)
    ? readStackFile(stack, args.get("--project-dir"))
    : {};
  const resolved = resolveConfig(values, readProjectFile(args.get("--project-dir")).defaults);
  if (!resolved.config) {
    console.error(formatIssues(`Invalid configuration for stack "${stack}":`, resolved.errors));
    return 1;
  }
  console.log(deployParallelism(buildPlan(resolved.config)));
  return 0;
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
