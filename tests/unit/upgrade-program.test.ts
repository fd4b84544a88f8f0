// A Kubernetes upgrade of a running cluster under mocks: what `pulumi up` would create, update or
// delete (diffRuns models the engine), and what it refuses, reading the stack's last outputs.

import { Change, ProgramRun, diffRuns, failedRun, runProgram } from "./harness";
import { SUPPORTED_KUBERNETES } from "../../render/versions";

const base = { "gcp:region": "europe-west1", clusterName: "c", workerCount: 2, controlPlaneCount: 3 };
const pin = (minor: string) => SUPPORTED_KUBERNETES[minor].patch;
const nodes = (workers: number) => [
  ...[1, 2, 3].map((i) => ({ name: `c-cp-${i}`, role: "control-plane" })),
  ...Array.from({ length: workers }, (_, i) => ({ name: `c-worker-${i + 1}`, role: "worker" })),
];
/** The outputs a deployment of 1.35 (created with `created`) left. */
const deployedAt = (version: string, created = pin("1.35")) => ({
  previousOutputs: {
    kubernetesVersion: version,
    createdWithKubernetes: created,
    controlPlaneCount: 3,
    nodes: nodes(2),
  },
});

function summary(changes: Map<string, Change>): Record<Change, string[]> {
  const out: Record<Change, string[]> = { create: [], update: [], replace: [], delete: [], same: [] };
  for (const [name, change] of changes) out[change].push(name);
  for (const list of Object.values(out)) list.sort();
  return out;
}
const upgradeSteps = [
  "c-cp-1-upgrade",
  "c-cp-2-upgrade",
  "c-cp-3-upgrade",
  "c-worker-1-upgrade",
  "c-worker-1-upgrade-drain",
  "c-worker-1-upgrade-uncordon",
  "c-worker-2-upgrade",
  "c-worker-2-upgrade-drain",
  "c-worker-2-upgrade-uncordon",
  "cluster-upgrade-verify",
].sort();

let running: ProgramRun;
let upgrading: ProgramRun;
beforeAll(async () => {
  running = await runProgram({ ...base, kubernetesVersion: "1.35" }, deployedAt(pin("1.35")));
  upgrading = await runProgram({ ...base, kubernetesVersion: "1.36" }, deployedAt(pin("1.35")));
});

test("setting the next minor creates only the upgrade's steps; the snapshot runs again first; nothing else changes", () => {
  const s = summary(diffRuns(running, upgrading));
  expect(s.create).toEqual(upgradeSteps);
  expect(s.update).toEqual(["cluster-snapshot"]);
  expect(s.replace).toEqual([]);
  expect(s.delete).toEqual([]);
  // Preparations, joins, init, refreshes: the same inputs, so they do not run again.
  expect(summary(diffRuns(running, upgrading)).same).toEqual(
    expect.arrayContaining([
      "c-worker-1-prepare",
      "c-worker-1-join",
      "c-cp-1-init",
      "workers-credentials",
      "c-cp-2-join",
    ]),
  );
});

test("the upgrade waits for the snapshot and the verified cluster, then goes one control plane at a time", () => {
  expect(upgrading.byName("c-cp-1-upgrade").dependsOn).toEqual(["cluster-snapshot", "cluster-verify"]);
  expect(upgrading.byName("c-cp-2-upgrade").dependsOn).toEqual(["c-cp-1-upgrade"]);
  expect(upgrading.byName("c-worker-1-upgrade-drain").dependsOn).toEqual(["c-cp-3-upgrade"]);
  expect(upgrading.byName("c-worker-2-upgrade-drain").dependsOn).toEqual(["c-worker-1-upgrade-uncordon"]);
  expect(upgrading.byName("c-cp-1-upgrade").inputs.stdin).toContain("UPGRADE_ACTION='apply'");
  expect(upgrading.byName("c-cp-2-upgrade").inputs.stdin).toContain("UPGRADE_ACTION='node'");
  expect(upgrading.byName("c-worker-1-upgrade").inputs.stdin).toContain(`K8S_VERSION='v${pin("1.36")}'`);
});

test("a pulumi up that failed half-way resumes: run again, nothing already done changes", async () => {
  // The version output waits for the upgrade's final verification, which waits for every upgrade
  // step: when one fails, no output is registered (harness.ts, outputDependsOn) and the next run
  // reads the last successful deployment's, the old version. Outside an upgrade it waits for nothing.
  expect(upgrading.outputDependsOn.kubernetesVersion).toEqual(["cluster-upgrade-verify"]);
  expect(running.outputDependsOn.kubernetesVersion ?? []).toEqual([]);
  const again = await runProgram({ ...base, kubernetesVersion: "1.36" }, deployedAt(pin("1.35")));
  const s = summary(diffRuns(upgrading, again));
  expect([s.create, s.update, s.replace, s.delete]).toEqual([[], [], [], []]);
});

test("the version output moves only after the upgrade's verification; the first version stays", () => {
  expect(upgrading.outputs.kubernetesVersion).toBe(pin("1.36"));
  expect(upgrading.outputs.createdWithKubernetes).toBe(pin("1.35"));
});

test("once upgraded, the next pulumi up drops the finished upgrade's steps and moves etcdutl to the new etcd", async () => {
  const after = await runProgram({ ...base, kubernetesVersion: "1.36" }, deployedAt(pin("1.36")));
  const s = summary(diffRuns(upgrading, after));
  expect(s.delete).toEqual(upgradeSteps);
  // The backup steps install the etcdutl of the etcd that runs: during the upgrade still the old one.
  expect(s.update).toEqual(["c-cp-1-backup", "c-cp-2-backup", "c-cp-3-backup"]);
  expect(upgrading.byName("c-cp-1-backup").inputs.stdin).toContain(
    `ETCD_VERSION='${SUPPORTED_KUBERNETES["1.35"].etcdVersion}'`,
  );
  expect(after.byName("c-cp-1-backup").inputs.stdin).toContain(
    `ETCD_VERSION='${SUPPORTED_KUBERNETES["1.36"].etcdVersion}'`,
  );
  expect([s.create, s.replace]).toEqual([[], []]);
  for (const name of upgradeSteps) expect(upgrading.byName(name).inputs.delete).toBeUndefined();
});

test.each([
  [
    "skipping a minor",
    { kubernetesVersion: "1.37" },
    deployedAt(pin("1.35")),
    /kubernetesVersion: "1.35" -> "1.37" skips a minor.*set "1.36"/,
  ],
  [
    "a downgrade",
    { kubernetesVersion: "1.35" },
    deployedAt(pin("1.36")),
    /kubernetesVersion: .*downgrades are not supported/,
  ],
  [
    "an upgrade and a scale-up at once",
    { kubernetesVersion: "1.36", workerCount: 4 },
    deployedAt(pin("1.35")),
    /workerCount: 2 -> 4 in the same pulumi up as the upgrade 1\.35\.\d+ -> 1\.36\.\d+ is refused/,
  ],
])("%s is refused in preview, before any resource", async (_, values, options, message) => {
  const failure = await failedRun({ ...base, ...values }, { ...options, preview: true });
  expect(failure.message).toMatch(message);
  expect(failure.registered).toEqual([]);
});

test("a release of this program that bumps a pinned patch: the upgrade's steps, the preparations re-run (joined machines keep their packages), init and the join credentials untouched", async () => {
  // The same stack and config; only render/versions.ts moved 1.35 to a newer patch.
  const bumped = await runProgram(
    { ...base, kubernetesVersion: "1.35" },
    { ...deployedAt(pin("1.35")), pins: { "1.35": { patch: "1.35.99", debVersion: "1.35.99-1.1" } } },
  );
  const s = summary(diffRuns(running, bumped));
  // A patch bump is an upgrade (issue 14): to the new pin.
  expect(s.create).toEqual(upgradeSteps);
  expect(bumped.byName("c-cp-1-upgrade").inputs.stdin).toContain("K8S_VERSION='v1.35.99'");
  // The preparations carry the table of pins (a new machine installs what the cluster runs), so they
  // run again; prepare-node.sh leaves a machine that has joined as it is (prepare-node.bats).
  const prepares = [1, 2, 3].map((i) => `c-cp-${i}-prepare`).concat(["c-worker-1-prepare", "c-worker-2-prepare"]);
  expect(s.update.filter((n) => n.endsWith("-prepare")).sort()).toEqual(prepares.sort());
  expect(s.update.filter((n) => !n.endsWith("-prepare"))).toEqual(["cluster-snapshot"]);
  expect([s.replace, s.delete]).toEqual([[], []]);
  // kubeadm init and the join credentials follow the version the cluster was created with.
  expect(s.same).toEqual(
    expect.arrayContaining(["c-cp-1-init", "workers-credentials", "c-cp-2-join", "c-worker-1-join"]),
  );
});
