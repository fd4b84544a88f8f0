// npm run bench:lab: folds the step durations that the real-cluster tier's fresh deploy recorded
// (tests/cluster/cluster.test.ts writes bench/out/lab-steps.json) into bench/durations.json, as a
// `lab` column beside each modeled figure. What it is: namespace machines on one host, with the
// packages and images served on the lab network; not GCE VMs, not the internet. The model keeps
// using the GCP estimates (`seconds`); the lab column is there to compare them with.

import * as fs from "fs";
import * as path from "path";
import { Durations, LabDuration } from "./model";

/** What the tier writes: one record per step its fresh deploy created. */
export interface LabSteps {
  readonly recordedAt: string;
  readonly host: string;
  readonly records: readonly { readonly id: string; readonly key: string; readonly seconds: number }[];
}

function median(sorted: readonly number[]): number {
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const round = (seconds: number) => Math.round(seconds * 10) / 10;

/** Per durations.json key, the median, fastest and slowest of the recorded steps. Pure. */
export function labColumn(steps: LabSteps): Map<string, LabDuration> {
  const byKey = new Map<string, number[]>();
  for (const record of steps.records) byKey.set(record.key, [...(byKey.get(record.key) ?? []), record.seconds]);
  const column = new Map<string, LabDuration>();
  for (const [key, seconds] of byKey) {
    const sorted = [...seconds].sort((a, b) => a - b);
    column.set(key, {
      medianSeconds: round(median(sorted)),
      minSeconds: round(sorted[0]),
      maxSeconds: round(sorted[sorted.length - 1]),
      samples: sorted.length,
    });
  }
  return column;
}

/** durations.json with the lab column replaced; keys the tier has no record for lose theirs. */
export function withLabColumn(durations: Durations, steps: LabSteps): Durations {
  const column = labColumn(steps);
  const unknown = [...column.keys()].filter((key) => !(key in durations));
  if (unknown.length > 0) throw new Error(`bench/durations.json has no entry for ${unknown.join(", ")}`);
  const result: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(durations)) {
    if (typeof entry !== "object") {
      result[key] = entry;
      continue;
    }
    const modeled = { seconds: entry.seconds, basis: entry.basis };
    const lab = column.get(key);
    result[key] = lab ? { ...modeled, lab } : modeled;
  }
  result._lab =
    `"lab": step durations measured by npm run test:cluster's fresh deploy on ${steps.recordedAt.slice(0, 10)} ` +
    `(${steps.host}): the dev stack's plan on Linux-namespace machines on one host, run over real SSH ` +
    "with real kubeadm, kubelets and containerd, packages and images served on the lab network; " +
    "not GCE VMs. The model uses `seconds`; `lab` is beside it for comparison.";
  return result as Durations;
}

if (require.main === module) {
  const stepsFile = process.argv[2] ?? path.join(__dirname, "out", "lab-steps.json");
  if (!fs.existsSync(stepsFile)) {
    console.error(`bench:lab: ${stepsFile} is missing: run npm run test:cluster first (its fresh deploy writes it)`);
    process.exit(1);
  }
  const durationsFile = path.join(__dirname, "durations.json");
  const durations = JSON.parse(fs.readFileSync(durationsFile, "utf8")) as Durations;
  const steps = JSON.parse(fs.readFileSync(stepsFile, "utf8")) as LabSteps;
  const updated = withLabColumn(durations, steps);
  fs.writeFileSync(durationsFile, `${JSON.stringify(updated, null, 2)}\n`);
  for (const [key, lab] of labColumn(steps))
    console.log(
      `${key.padEnd(24)} modeled ${String(durations[key].seconds).padStart(5)} s   lab median ${lab.medianSeconds} s (${lab.minSeconds}-${lab.maxSeconds}, ${lab.samples})`,
    );
}
