// The checks `npm run deploy` (tools/deploy.sh) makes before pulumi up, where gcloud exists: the
// project's APIs and the region's allocation quotas (render/quotas.ts). tools/deploy.sh runs gcloud
// and pulumi and hands their JSON over as files; this compares.
//   preflight --stack S --print-region                  prints the stack's gcp:region
//   preflight --stack S --project P --services F --region-quotas F [--state F]
//       F: `gcloud services list --enabled --format=json`, `gcloud compute regions describe
//       <region> --format=json`, `pulumi stack export` (what the stack already holds). A file that
//       is empty or not JSON (gcloud failed) skips its check, saying so.
// Exit 0: fine (or skipped); 1: an API to enable or a quota too low (one line each on stderr), or an
// invalid configuration; 2: usage.

import * as fs from "fs";
import { formatIssues, resolveConfig } from "../render/config";
import { buildPlan } from "../render/plan";
import { listStacks, readProjectFile, readStackFile } from "../render/project";
import {
  RegionQuotas,
  StackState,
  compareQuotas,
  enabledServiceNames,
  heldByStack,
  missingServicesLine,
} from "../render/quotas";

const USAGE =
  "usage: preflight --stack <name> [--project-dir <dir>] (--print-region | --project <id> --services <file> --region-quotas <file> [--state <file>])";
const VALUED = ["--stack", "--project-dir", "--project", "--services", "--region-quotas", "--state"];

/** The JSON in a file, or undefined when it is missing, empty or not JSON. */
function readJson(file: string | undefined): unknown {
  if (!file) return undefined;
  try {
    const text = fs.readFileSync(file, "utf8").trim();
    return text === "" ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function main(argv: readonly string[]): number {
  const args = new Map<string, string>();
  let printRegion = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--print-region") {
      printRegion = true;
    } else if (VALUED.includes(argv[i]) && argv[i + 1] !== undefined) {
      args.set(argv[i], argv[++i]);
    } else {
      console.error(`preflight: unexpected argument "${argv[i]}"; ${USAGE}`);
      return 2;
    }
  }
  const stack = args.get("--stack");
  if (!stack) {
    console.error(`preflight: ${USAGE}`);
    return 2;
  }
  const dir = args.get("--project-dir");
  const values = listStacks(dir).includes(stack) ? readStackFile(stack, dir) : {};
  const resolved = resolveConfig(values, readProjectFile(dir).defaults);
  if (!resolved.config) {
    console.error(formatIssues(`Invalid configuration for stack "${stack}":`, resolved.errors));
    return 1;
  }
  const config = resolved.config;
  if (printRegion) {
    console.log(config.region);
    return 0;
  }
  const project = args.get("--project") ?? config.project ?? "<project>";

  const services = readJson(args.get("--services"));
  const apis = Array.isArray(services) ? "APIs enabled; " : "";
  if (Array.isArray(services)) {
    const line = missingServicesLine(enabledServiceNames(services), project);
    if (line) {
      console.error(line);
      return 1;
    }
  } else {
    console.error("ha-k8s: could not list the project's enabled APIs (see gcloud's message above): skipped that check");
  }

  const region = readJson(args.get("--region-quotas")) as RegionQuotas | undefined;
  if (!region || !Array.isArray(region.quotas)) {
    console.error(
      `ha-k8s: could not read the quotas of ${config.region} (see gcloud's message above): skipped that check`,
    );
    return 0;
  }
  const totals = buildPlan(config).totals;
  const state = (readJson(args.get("--state")) ?? {}) as StackState;
  const { shortfalls, unchecked } = compareQuotas(totals, region, heldByStack(state, totals.region), project);
  if (unchecked.length > 0) {
    console.error(`ha-k8s: ${config.region} reports no quota ${unchecked.join(", ")}: not checked`);
  }
  if (shortfalls.length > 0) {
    for (const line of shortfalls) console.error(line);
    return 1;
  }
  const summary = Object.entries(totals.quotas)
    .map(([metric, amount]) => `${metric} ${amount}`)
    .join(", ");
  console.error(`ha-k8s: ${apis}quotas in ${config.region} suffice (${summary})`);
  return 0;
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
