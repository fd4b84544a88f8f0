// Issue 21, sections 3 and 4: changes the guard refuses in preview, before any resource, because GCP
// or the GCP provider would break the running cluster: two HAProxy VMs back to one, moving the
// HAProxy VMs' zones, another GCP project, another boot disk size.

import { ProgramRun, failedRun, runProgram } from "./harness";
import { ConfigValues } from "./mocks";
import { PreviousOutputs, changeProblems, immutableSettingsOf } from "../../render/changes";
import { ClusterConfig, resolveConfig } from "../../render/config";
import { buildPlan } from "../../render/plan";
import { readProjectFile } from "../../render/project";

const base = { "gcp:region": "europe-west1", clusterName: "c", loadBalancerCount: 2 };
const configOf = (values: Record<string, unknown>): ClusterConfig => {
  const resolved = resolveConfig(values, readProjectFile().defaults);
  if (!resolved.config) throw new Error(JSON.stringify(resolved.errors));
  return resolved.config;
};
/** What a deployment of these values leaves for the next one (outputs immutableSettings and nodes). */
const leftBy = (values: Record<string, unknown>, environmentProject?: string): PreviousOutputs => {
  const config = configOf(values);
  return {
    immutableSettings: immutableSettingsOf(config, environmentProject),
    loadBalancers: buildPlan(config).nodes.filter((n) => n.role === "loadbalancer"),
  };
};

describe("the guard (render/changes.ts)", () => {
  test("two HAProxy VMs back to one is refused, naming the way out", () => {
    const problems = changeProblems(leftBy(base), configOf({ ...base, loadBalancerCount: 1 }));
    expect(problems).toEqual([
      expect.stringMatching(
        /^ha-k8s:loadBalancerCount: 2 -> 1 is refused: .*forwarding rules hold .* Keep 2, or build a new stack with 1 \(docs\/operating\.md/,
      ),
    ]);
  });

  test("one HAProxy VM to two, and staying at two, pass", () => {
    expect(changeProblems(leftBy({ ...base, loadBalancerCount: 1 }), configOf(base))).toEqual([]);
    expect(changeProblems(leftBy(base), configOf(base))).toEqual([]);
  });

  test("with two HAProxy VMs, zones that move them are refused; zones after theirs may change", () => {
    const before = { ...base, zones: ["europe-west1-b", "europe-west1-c", "europe-west1-d"] };
    const moved = changeProblems(leftBy(before), configOf({ ...before, zones: ["europe-west1-c", "europe-west1-d"] }));
    expect(moved).toEqual([
      expect.stringContaining(
        'ha-k8s:zones: ["europe-west1-c","europe-west1-d"] would move the instance groups of the two HAProxy VMs ' +
          "(c-lb-1 europe-west1-b -> europe-west1-c, c-lb-2 europe-west1-c -> europe-west1-d)",
      ),
    ]);
    expect(moved[0]).toContain("Keep europe-west1-b and europe-west1-c as the first 2 zones");
    const kept = { ...before, zones: ["europe-west1-b", "europe-west1-c"] };
    expect(changeProblems(leftBy(before), configOf(kept))).toEqual([]);
    // With one HAProxy VM there is no instance group: zones are the usual new-VMs-only change.
    const single = { ...before, loadBalancerCount: 1 };
    expect(changeProblems(leftBy(single), configOf({ ...single, zones: ["europe-west1-d"] }))).toEqual([]);
  });

  test("the project the provider resolves is guarded, from gcp:project or the environment", () => {
    const deployed = leftBy({ ...base, "gcp:project": "project-one" });
    expect(deployed.immutableSettings).toMatchObject({ project: "project-one" });
    // gcp:project unset: the environment's project, the GCP provider's fallback, is the one compared.
    expect(changeProblems(deployed, configOf(base), "project-two")).toEqual([
      expect.stringMatching(
        /^gcp:project: "project-one" -> "project-two" is refused: .*pulumi config set gcp:project project-one/,
      ),
    ]);
    expect(changeProblems(deployed, configOf(base), "project-one")).toEqual([]);
    // gcp:project wins over the environment, as in the provider.
    expect(changeProblems(deployed, configOf({ ...base, "gcp:project": "project-one" }), "project-two")).toEqual([]);
    // A preview that resolves no project cannot compare, and a deployment from before the key has none.
    expect(changeProblems(deployed, configOf(base))).toEqual([]);
    expect(changeProblems(leftBy(base), configOf({ ...base, "gcp:project": "project-two" }))).toEqual([]);
  });

  test("another boot disk size is refused: it would replace every VM at once", () => {
    expect(changeProblems(leftBy(base), configOf({ ...base, diskSizeGb: 100 }))).toEqual([
      expect.stringMatching(/^ha-k8s:diskSizeGb: 50 -> 100 is refused: .*every VM would be replaced at once.* Keep 50/),
    ]);
  });

  test("every refusal of one change is listed at once", () => {
    const problems = changeProblems(
      leftBy({ ...base, "gcp:project": "project-one" }),
      configOf({ ...base, "gcp:project": "project-two", loadBalancerCount: 1, diskSizeGb: 80 }),
    );
    expect(problems.map((p) => p.split(":").slice(0, 2).join(":"))).toEqual([
      "gcp:project",
      "ha-k8s:diskSizeGb",
      "ha-k8s:loadBalancerCount",
    ]);
  });
});

// Under load a program run takes a while (each run imports the program afresh).
const PROGRAM_TIMEOUT = 300_000;

describe("the program refuses before any resource (components/guard.ts)", () => {
  /** The outputs a deployment of `base` left (index.ts: immutableSettings, nodes). */
  const deployedConfig = configOf({ ...base, "gcp:project": "ha-k8s-test-project" });
  const previousOutputs = {
    controlPlaneCount: 3,
    immutableSettings: immutableSettingsOf(deployedConfig),
    nodes: buildPlan(deployedConfig).nodes.map((n) => ({ name: n.name, role: n.role, zone: n.zone })),
  };

  test(
    "a deployment records the project and the disk size it was built with",
    async () => {
      const run: ProgramRun = await runProgram(base);
      expect(run.outputs.immutableSettings).toEqual(previousOutputs.immutableSettings);
    },
    PROGRAM_TIMEOUT,
  );

  test.each<[string, ConfigValues, RegExp]>([
    ["loadBalancerCount 2 -> 1", { loadBalancerCount: 1 }, /ha-k8s:loadBalancerCount: 2 -> 1 is refused/],
    [
      "another project",
      { "gcp:project": "another-project" },
      /gcp:project: "ha-k8s-test-project" -> "another-project"/,
    ],
    ["another disk size", { diskSizeGb: 60 }, /ha-k8s:diskSizeGb: 50 -> 60 is refused/],
    ["zones moving the HAProxy VMs", { zones: ["europe-west1-d", "europe-west1-b"] }, /ha-k8s:zones: .* would move/],
  ])(
    "%s",
    async (_, change, message) => {
      const failure = await failedRun({ ...base, ...change }, { preview: true, previousOutputs });
      expect(failure.message).toMatch(message);
      expect(failure.registered).toEqual([]);
    },
    PROGRAM_TIMEOUT,
  );

  test(
    "the project from the environment counts when gcp:project is unset",
    async () => {
      const saved = process.env.GOOGLE_PROJECT;
      process.env.GOOGLE_PROJECT = "env-project";
      try {
        const failure = await failedRun({ ...base, "gcp:project": undefined }, { preview: true, previousOutputs });
        expect(failure.message).toMatch(/gcp:project: "ha-k8s-test-project" -> "env-project" is refused/);
      } finally {
        if (saved === undefined) delete process.env.GOOGLE_PROJECT;
        else process.env.GOOGLE_PROJECT = saved;
      }
    },
    PROGRAM_TIMEOUT,
  );
});
