// Recovery never acts on the wrong machine (issue 21 §1), in the program's shape under mocks:
//   - every delete action names the instance id of the VM it was created for (the mock's
//     instanceId is "id-<name>"), so a delete stored before a lost VM was recreated, which Pulumi
//     runs over the stored connection against the new machine at the same address, finds another
//     id on that machine's Node (join.sh records it) and does nothing (scripts/member-remove.sh,
//     scripts/leave.sh; tests/scripts/membership.bats and join.bats run them);
//   - the steps on their own machine are `deletedWith` its VM, so deleting the VM (a scale-down,
//     a destroy) skips their provider Delete instead of dialing a machine on its way out; the steps
//     a control plane runs for another machine (an etcd member's removal, a worker's removal) are not.

import * as fs from "fs";
import * as path from "path";
import { ProgramRun, RecordedResource, runProgram } from "./harness";
import { resolveConfig } from "../../render/config";
import { readProjectFile, readStackFile } from "../../render/project";
import { Step, buildPlan, runsOnMachine } from "../../render/plan";
import { stepResource } from "../../render/step-resource";
import { readScriptSources } from "../../render/scripts";
import {
  INSTANCE_ID_ANNOTATION,
  createInstanceIdMachine,
  deleteGuardMachine,
  deletedWithMachine,
  instanceIdPlaceholder,
  renderStepDeleteCommand,
} from "../../render/steps";

const devValues = readStackFile("dev") as Record<string, string | number>;
const devPlan = buildPlan(resolveConfig(devValues, readProjectFile().defaults).config!);
const sources = readScriptSources();
const INSTANCE = "gcp:compute/instance:Instance";

let dev: ProgramRun;
beforeAll(async () => {
  dev = await runProgram(devValues);
});

const commandFor = (stepId: string): RecordedResource => dev.byName(stepId.replace("/", "-"));
const withDelete = devPlan.steps.filter((s) => runsOnMachine(s) && renderStepDeleteCommand(devPlan, s, sources));
const byKind = (kind: Step["kind"]) => devPlan.steps.filter((s) => s.kind === kind);

test("the plan has the delete actions this is about: joins, memberships and worker removals", () => {
  expect(new Set(withDelete.map((s) => s.kind))).toEqual(new Set(["join", "member", "removal"]));
  expect(byKind("removal").length).toBeGreaterThan(0);
  expect(byKind("member").length).toBeGreaterThan(0);
});

test("every delete action names the instance id of the VM it was created for (its subject's)", () => {
  for (const step of withDelete) {
    const del = commandFor(step.id).inputs.delete as string;
    const vm = dev.byName(step.subject);
    expect([step.id, vm.type]).toEqual([step.id, INSTANCE]);
    expect([step.id, del]).toEqual([step.id, expect.stringContaining(`EXPECTED_INSTANCE_ID='id-${step.subject}'`)]);
    // Only its own subject's id: never the host's (a removal runs on a control plane).
    for (const other of devPlan.nodes.filter((n) => n.name !== step.subject)) {
      expect(del).not.toContain(`'id-${other.name}'`);
    }
  }
  // The scripts that compare it: the machine's own id (leave.sh) and the Node's record (member-remove.sh).
  const removal = commandFor(byKind("removal")[0].id).inputs.delete as string;
  expect(removal).toContain("member-remove.sh");
  expect(removal).toContain(`MEMBER_NODE='${byKind("removal")[0].subject}'`);
  expect(commandFor(byKind("join")[0].id).inputs.delete as string).toContain("leave.sh");
});

test("the instance id is the one thing a delete takes from the deployment: the rest is the offline render's", () => {
  for (const step of withDelete) {
    const offline = renderStepDeleteCommand(devPlan, step, sources)!;
    expect(offline).toContain(`EXPECTED_INSTANCE_ID='${instanceIdPlaceholder(step.subject)}'`);
    const deployed = commandFor(step.id).inputs.delete as string;
    expect(deployed).toBe(
      offline.replace(
        `EXPECTED_INSTANCE_ID='${instanceIdPlaceholder(step.subject)}'`,
        `EXPECTED_INSTANCE_ID='id-${step.subject}'`,
      ),
    );
    // What the real-cluster tier's engine is given (render/step-resource.ts) is the same command.
    expect(stepResource(devPlan, step, sources, (n) => `id-${n}`).delete).toBe(deployed);
    expect(deleteGuardMachine(step)).toBe(step.subject);
  }
});

test("the steps on their own machine are deleted with its VM; nothing a machine runs for another one is", () => {
  for (const kind of ["prepare", "join", "ready", "backup", "haproxy", "init"] as const) {
    const steps = byKind(kind);
    expect([kind, steps.length > 0]).toEqual([kind, true]);
    for (const step of steps) {
      const cmd = commandFor(step.id);
      expect([step.id, cmd.deletedWith]).toEqual([step.id, step.node]);
      expect(dev.byName(step.node).type).toBe(INSTANCE);
    }
  }
  // The etcd member removal and the worker removal run on another control plane, and must run
  // while the machine they remove is being deleted: never deletedWith. Nor the join credentials,
  // the verification, the snapshot (hosted on the first control plane for the cluster).
  for (const kind of ["member", "removal", "credentials", "verify", "snapshot"] as const) {
    for (const step of byKind(kind)) {
      expect([step.id, commandFor(step.id).deletedWith]).toEqual([step.id, undefined]);
    }
  }
  // Login checks run where `pulumi up` runs, and have nothing to undo.
  for (const step of byKind("login")) expect(deletedWithMachine(step)).toBeUndefined();
});

test("deletedWith is only ever the machine a step runs on, about itself, and re-runs with", () => {
  for (const step of devPlan.steps.filter(runsOnMachine)) {
    const machine = deletedWithMachine(step);
    if (machine === undefined) continue;
    expect([step.id, machine]).toEqual([step.id, step.node]);
    expect(step.subject).toBe(step.node);
    expect(step.rerunWhenReplaced).toContain(step.node);
  }
  const withDeleteAndDeletedWith = withDelete.filter((s) => deletedWithMachine(s) !== undefined).map((s) => s.kind);
  expect(new Set(withDeleteAndDeletedWith)).toEqual(new Set(["join"]));
});

test("the annotation the program names is the one the scripts set and read", () => {
  const scripts = path.join(__dirname, "../../scripts");
  const read = (name: string) => fs.readFileSync(path.join(scripts, name), "utf8");
  // Defined once, in lib.sh, which every one of these scripts sources.
  expect(read("lib.sh")).toContain(`INSTANCE_ANNOTATION="${INSTANCE_ID_ANNOTATION}"`);
  expect(read("lib.sh")).toContain("INSTANCE_ID_URL=http://169.254.169.254/computeMetadata/v1/instance/id");
  const uses: Record<string, RegExp> = {
    "join.sh": /^record_instance_id as_node$/m,
    "kubeadm-init.sh": /^\s*record_instance_id admin$/m,
    "leave.sh": /this_instance_id/,
    "member-remove.sh": /\$INSTANCE_ANNOTATION/,
  };
  for (const [name, use] of Object.entries(uses)) {
    expect([name, read(name)]).toEqual([name, expect.stringMatching(use)]);
    expect([name, read(name)]).toEqual([name, expect.stringContaining('lib.sh"')]);
    // No second definition that could drift from the program's.
    expect([name, read(name)]).toEqual([name, expect.not.stringContaining("INSTANCE_ANNOTATION=")]);
  }
});

test("a control plane's join credentials name the instance about to join, so only a lost machine's etcd member is removed", () => {
  const credentials = devPlan.steps.filter((s) => s.kind === "credentials");
  const forControlPlanes = credentials.filter((s) => createInstanceIdMachine(devPlan, s) !== undefined);
  expect(forControlPlanes.map((s) => s.subject)).toEqual(
    devPlan.nodes
      .filter((n) => n.role === "control-plane")
      .map((n) => n.name)
      .slice(1),
  );
  for (const step of forControlPlanes) {
    const stdin = commandFor(step.id).inputs.stdin as string;
    const ip = devPlan.nodes.find((n) => n.name === step.subject)!.internalIp;
    expect(stdin).toContain(`JOIN_INSTANCE_ID='id-${step.subject}'`);
    expect(stdin).toContain(`JOIN_IP='${ip}'`);
    expect(stdin).toContain("remove_lost_member");
    for (const other of devPlan.nodes.filter((n) => n.name !== step.subject)) {
      expect(stdin).not.toContain(`'id-${other.name}'`);
    }
  }
  // The workers' credentials remove no member and name no instance.
  for (const step of credentials.filter((s) => !forControlPlanes.includes(s))) {
    expect(commandFor(step.id).inputs.stdin as string).not.toContain("JOIN_INSTANCE_ID='");
  }
});
