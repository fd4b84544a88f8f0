// Issue 21, section 4: machine types GCE knows but refuses with this program's VMs (pd-balanced boot
// disks, one amd64 image) fail validation, each naming the key, the value and what is allowed.

import { resolveConfig } from "../../render/config";
import { readProjectFile } from "../../render/project";

const defaults = readProjectFile().defaults;

test.each([
  ["n4-standard-4", /the n4 family takes Hyperdisk boot disks only/],
  ["c4-standard-4", /the c4 family takes Hyperdisk boot disks only/],
  ["c4d-highmem-8", /the c4d family takes Hyperdisk boot disks only/],
  ["n4-custom-4-16384", /the n4 family takes Hyperdisk boot disks only/],
  ["t2a-standard-4", /the t2a family is Arm \(Ampere Altra\), and every VM here boots the same amd64 Ubuntu image/],
])("%s is refused with the reason and what is allowed", (type, reason) => {
  const { errors } = resolveConfig({ workerMachineType: type }, defaults);
  expect(errors).toHaveLength(1);
  expect(errors[0].key).toBe("ha-k8s:workerMachineType");
  expect(errors[0].message).toMatch(new RegExp(`^"${type}" is not allowed: `));
  expect(errors[0].message).toMatch(reason);
  expect(errors[0].message).toMatch(/allowed: .*\(families e2, n1, n2, n2d, c2, c2d, c3, c3d, t2d\)/);
});

test("every refused machine type of the three keys is listed at once, next to other problems", () => {
  const { errors } = resolveConfig(
    {
      controlPlaneMachineType: "c4-standard-8",
      workerMachineType: "t2a-standard-8",
      loadBalancerMachineType: "n4-standard-2",
      diskSizeGb: 5,
    },
    defaults,
  );
  expect(errors.map((e) => e.key)).toEqual([
    "ha-k8s:controlPlaneMachineType",
    "ha-k8s:workerMachineType",
    "ha-k8s:loadBalancerMachineType",
    "ha-k8s:diskSizeGb",
  ]);
});

test("the families that boot pd-balanced amd64 disks pass", () => {
  for (const type of [
    "e2-standard-4",
    "n2-standard-4",
    "n2d-highmem-4",
    "c3-standard-4",
    "c3d-standard-4",
    "t2d-standard-4",
  ]) {
    expect(resolveConfig({ workerMachineType: type }, defaults).errors).toEqual([]);
  }
});
