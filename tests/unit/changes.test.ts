// Day 2 under mocks: for each config change, which resources `pulumi up` would create, update,
// replace or delete (diffRuns models the engine; see tests/unit/harness.ts).

import { Change, ProgramRun, diffRuns, failedRun, runProgram } from "./harness";
import { readStackFile } from "../../render/project";

const base = { "gcp:region": "europe-west1", clusterName: "c", workerCount: 2, controlPlaneCount: 3 };

function summary(changes: Map<string, Change>): Record<Change, string[]> {
  const out: Record<Change, string[]> = { create: [], update: [], replace: [], delete: [], same: [] };
  for (const [name, change] of changes) out[change].push(name);
  for (const list of Object.values(out)) list.sort();
  return out;
}

let start: ProgramRun;
beforeAll(async () => {
  start = await runProgram(base);
});

test("a second pulumi up with no config change plans no changes", async () => {
  const again = await runProgram(base, { previousOutputs: { controlPlaneCount: 3 } });
  const s = summary(diffRuns(start, again));
  expect({ create: s.create, update: s.update, replace: s.replace, delete: s.delete }).toEqual({
    create: [],
    update: [],
    replace: [],
    delete: [],
  });
});

const perWorker = (n: string) => [
  n,
  `${n}-ip`,
  `${n}-join`,
  `${n}-login`,
  `${n}-prepare`,
  `${n}-ready`,
  `${n}-removal`,
];
const perControlPlane = (n: string) => [
  n,
  `${n}-credentials`,
  `${n}-ip`,
  `${n}-join`,
  `${n}-login`,
  `${n}-member`,
  `${n}-prepare`,
];
/** A control plane's resources, and its backup step (etcd backups). */
const withBackup = (n: string) => [...perControlPlane(n), `${n}-backup`];

test("scaling workers up adds only the new VMs and their join steps, refreshing the token first", async () => {
  const four = await runProgram({ ...base, workerCount: 4 });
  const s = summary(diffRuns(start, four));
  expect(s.create).toEqual([...perWorker("c-worker-3"), ...perWorker("c-worker-4")].sort());
  expect(s.update).toEqual([]);
  // The shared token refresh runs again (new triggers) before the new joins, which depend on it;
  // the verification runs again for the new machines.
  expect(s.replace).toEqual(["cluster-verify", "workers-credentials"]);
  expect(s.delete).toEqual([]);
  expect(four.byName("c-worker-4-join").dependsOn).toContain("workers-credentials");
});

test("scaling workers down drains and deletes only the removed nodes, with bounded delete actions", async () => {
  const four = await runProgram({ ...base, workerCount: 4 });
  const s = summary(diffRuns(four, start));
  expect(s.delete).toEqual(["c-worker-3", "c-worker-4"].flatMap(perWorker).sort());
  expect(s.replace).toEqual(["cluster-verify", "workers-credentials"]); // harmless: a token refresh, a check
  const removal = four.byName("c-worker-4-removal");
  // The drain runs on the control plane the worker was assigned to (worker-4 of 3: cp-1), bounded.
  expect((removal.inputs.connection as { host: string }).host).toBe("10.10.0.10");
  expect(removal.inputs.create).toBeUndefined();
  expect(removal.inputs.delete).toMatch(
    /^sudo timeout 300 bash -s <<'HA_K8S_DELETE' \|\| \{ [^\n]*echo .*member-remove\.sh for c-worker-4\/removal/,
  );
  expect(removal.inputs.delete).toContain("MEMBER_NODE='c-worker-4'");
  expect(four.byName("c-worker-4-join").inputs.delete).toMatch(
    /^sudo timeout 300 bash -s <<'HA_K8S_DELETE' \|\| \{ [^\n]*echo .*leave\.sh/,
  );
  // Pulumi deletes dependents first: removal (drain) → join (kubeadm reset) → VM.
  expect(removal.dependsOn).toContain("c-worker-4-join");
  expect(four.byName("c-worker-4-join").dependsOn).toContain("c-worker-4-prepare");
  expect(four.byName("c-worker-4-prepare").dependsOn).toEqual(["c-worker-4-login"]);
  expect(four.byName("c-worker-4-login").dependsOn).toEqual(["c-worker-4", "c-network", "c-lb"]);
});

test("control planes 3 -> 5: new ones join one at a time after cp-3; HAProxy gets the new servers", async () => {
  const five = await runProgram({ ...base, controlPlaneCount: 5 }, { previousOutputs: { controlPlaneCount: 3 } });
  const s = summary(diffRuns(start, five));
  expect(s.create).toEqual(["c-cp-4", "c-cp-5"].flatMap(withBackup).sort());
  // The snapshot step runs again for any control-plane count change (see the backup tests below).
  expect(s.update).toEqual(["c-lb-1-haproxy", "cluster-snapshot"]);
  expect(s.replace).toEqual(["cluster-verify"]);
  expect(five.byName("c-cp-4-credentials").dependsOn).toEqual(["c-cp-3-member"]);
  expect(five.byName("c-cp-5-credentials").dependsOn).toEqual(["c-cp-4-member"]);
  expect(five.byName("c-lb-1-haproxy").inputs.stdin).toContain("server c-cp-5 10.10.0.14:6443");
});

test("control planes 5 -> 3: the last two leave (etcd member removed before reset), one after the other", async () => {
  const five = await runProgram({ ...base, controlPlaneCount: 5 });
  const three = await runProgram(base, { previousOutputs: { controlPlaneCount: 5 } });
  const s = summary(diffRuns(five, three));
  expect(s.delete).toEqual(["c-cp-4", "c-cp-5"].flatMap(withBackup).sort());
  expect(s.update).toEqual(["c-lb-1-haproxy", "cluster-snapshot"]);
  expect(s.replace).toEqual(["cluster-verify"]);
  // cp-5's chain depends on cp-4's, so Pulumi removes cp-5 completely before it touches cp-4.
  expect(five.byName("c-cp-5-credentials").dependsOn).toEqual(["c-cp-4-member"]);
  expect(five.byName("c-cp-5-member").inputs.stdin).toContain("MEMBER_ROLE='control-plane'");
});

test.each([
  [5, 1],
  [3, 1],
  [7, 3],
])("control planes %i -> %i in one update is refused, saying why, before any resource", async (from, to) => {
  const failure = await failedRun({ ...base, controlPlaneCount: to }, { previousOutputs: { controlPlaneCount: from } });
  expect(failure.message).toMatch(
    new RegExp(`refusing to go from ${from} to ${to} control planes in one update: fewer than a majority`),
  );
  expect(failure.registered).toEqual([]);
});

test.each<[string, Record<string, string>]>([
  ["subnetCidr", { subnetCidr: "10.20.0.0/22" }],
  ["podCidr", { podCidr: "10.200.0.0/16" }],
  ["clusterName", { clusterName: "other" }],
  ["gcp:region", { "gcp:region": "europe-west4" }],
])("changing %s on a running cluster is refused before any resource", async (key, change) => {
  const failure = await failedRun(
    { ...base, ...change },
    { previousOutputs: { controlPlaneCount: 3, immutableSettings: start.outputs.immutableSettings } },
  );
  expect(failure.message).toMatch(new RegExp(`${key}: .* is refused: the running cluster is built on it`));
  expect(failure.registered).toEqual([]);
});

test("changing the image or machine type replaces nothing: new VMs get it, existing ones are rolled explicitly", async () => {
  const s = summary(
    diffRuns(
      start,
      await runProgram({ ...base, image: "ubuntu-os-cloud/ubuntu-2604-lts-amd64", workerMachineType: "e2-standard-4" }),
    ),
  );
  expect(s.replace).toEqual([]);
  expect(s.delete).toEqual([]);
  expect(s.create).toEqual([]);
  for (const vm of start.ofType("gcp:compute/instance:Instance")) {
    expect(vm.ignoreChanges).toEqual([
      "bootDisk.initializeParams.image",
      "machineType",
      "zone",
      "serviceAccount.scopes",
    ]);
  }
});

test("the token (and for control planes the certificates) is refreshed right before every join", () => {
  for (const join of start.ofType("command:remote:Command").filter((c) => c.name.endsWith("-join"))) {
    const node = join.name.replace(/-join$/, "");
    const refreshName = node.includes("-cp-") ? `${node}-credentials` : "workers-credentials";
    expect(join.dependsOn).toContain(refreshName);
    const refresh = start.byName(refreshName);
    expect(refresh.inputs.stdin).toContain("refresh-credentials.sh");
    // A replaced VM re-runs its refresh too: the join's trigger is among the refresh's.
    expect(refresh.inputs.triggers).toEqual(expect.arrayContaining(join.inputs.triggers as string[]));
    if (node.includes("-cp-")) expect(refresh.inputs.stdin).toContain("kubeadm-upload-certs.yaml");
  }
});

describe("etcd backups across changes", () => {
  test("control planes 5 -> 3: the snapshot step is updated, so it runs before the removed members leave", async () => {
    const five = await runProgram({ ...base, controlPlaneCount: 5 });
    const three = await runProgram(base, { previousOutputs: { controlPlaneCount: 5 } });
    const changes = diffRuns(five, three);
    // The Pulumi engine deletes removed resources at the end of an update, after every create,
    // update and replace: seen with the real engine (../shared/notes/pulumi.md), and in its source,
    // pkg/resource/deploy/step_generator.go GenerateDeletes, which the deployment executor calls once
    // the program has registered everything. The snapshot is an update; the member removals deletes.
    expect(changes.get("cluster-snapshot")).toBe("update");
    expect(changes.get("c-cp-5-member")).toBe("delete");
    expect(three.byName("cluster-snapshot").inputs.stdin).toContain("CONTROL_PLANE_COUNT='3'");
    expect(five.byName("cluster-snapshot").inputs.stdin).toContain("CONTROL_PLANE_COUNT='5'");
    // It waits for nothing that is being removed.
    for (const dep of three.byName("cluster-snapshot").dependsOn) expect(changes.get(dep)).not.toBe("delete");
  });

  test("a kubernetesVersion change runs the snapshot again; a worker-count change does not", async () => {
    const upgraded = await runProgram({ ...base, kubernetesVersion: "1.37" });
    expect(diffRuns(start, upgraded).get("cluster-snapshot")).toBe("update");
    expect(upgraded.byName("cluster-snapshot").inputs.stdin).toContain("KUBERNETES_VERSION='1.37.2'");
    const workers = await runProgram({ ...base, workerCount: 4 });
    expect(diffRuns(start, workers).get("cluster-snapshot")).toBe("same");
  });

  test("changing backupSchedule updates the backup step of each control plane and nothing else", async () => {
    const s = summary(diffRuns(start, await runProgram({ ...base, backupSchedule: "daily" })));
    expect(s.update).toEqual(["c-cp-1-backup", "c-cp-2-backup", "c-cp-3-backup"]);
    expect([...s.create, ...s.replace, ...s.delete]).toEqual([]);
  });

  test("control planes built before backups keep their scopes (no stop, no replace); new ones get storage", async () => {
    const storage = "https://www.googleapis.com/auth/devstorage.read_write";
    type Account = { email: string; scopes: string[] };
    // The same cluster as deployed by the program before backups: control planes without the scope.
    const older = {
      ...start,
      resources: start.resources.map((r) => {
        const account = r.inputs.serviceAccount as Account | undefined;
        return account
          ? {
              ...r,
              inputs: {
                ...r.inputs,
                serviceAccount: { ...account, scopes: account.scopes.filter((x) => x !== storage) },
              },
            }
          : r;
      }),
    };
    const five = await runProgram({ ...base, controlPlaneCount: 5 }, { previousOutputs: { controlPlaneCount: 3 } });
    const changes = diffRuns(older, five);
    for (const cp of ["c-cp-1", "c-cp-2", "c-cp-3"]) expect([cp, changes.get(cp)]).toEqual([cp, "same"]);
    expect(changes.get("c-cp-5")).toBe("create");
    expect((five.byName("c-cp-5").inputs.serviceAccount as Account).scopes).toContain(storage);
  });
});

test("upgrading this program on a running cluster deletes nothing that acts when deleted", async () => {
  // The resources with a delete command that the previous version of the program left in the dev
  // stack (tests/unit/fixtures-state-6a545ca-dev.json): one that this version neither registers nor
  // aliases is deleted at the end of the update, and its stored delete command (drain, etcd member
  // removal, kubeadm reset) runs.
  const previous = (await import("./fixtures-state-6a545ca-dev.json")).resources as { type: string; name: string }[];
  const now = await runProgram(readStackFile("dev") as Record<string, string | number>);
  const known = new Set(now.resources.flatMap((r) => [r.name, ...r.aliases].map((n) => `${r.type}::${n}`)));
  const deletedWithAction = previous.filter((r) => !known.has(`${r.type}::${r.name}`)).map((r) => r.name);
  expect(deletedWithAction).toEqual([]);
  // The workers' former membership steps live on as their removal steps (an alias: an update that
  // runs nothing, since a removal step has no create command).
  expect(now.byName("ha-k8s-dev-worker-1-removal").aliases).toEqual(["ha-k8s-dev-worker-1-member"]);
});
