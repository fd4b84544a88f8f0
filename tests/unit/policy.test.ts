// The policy pack (policy/): every rule fails on a bad resource and passes on a good one, through
// the @pulumi/policy wrappers too, and the program's own resources (dev and prod stacks, under
// mocks) pass — dev's open adminCidrs would not pass as prod.

import { ResourceValidationArgs, StackValidationArgs, resourcePolicies, stackPolicy } from "../../policy/policies";
import { BUCKET, Environment, FIREWALL, INSTANCE, Resource, checkStack } from "../../policy/rules";
import { readStackFile } from "../../render/project";
import { runProgram } from "./harness";

const node = (role: string, overrides: Record<string, unknown> = {}): Resource => ({
  type: INSTANCE,
  name: `c-${role}-1`,
  props: {
    machineType: "e2-medium",
    labels: { "ha-k8s-role": role },
    networkInterfaces: [{ accessConfigs: [] }],
    shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
    ...overrides,
  },
});
const firewall = (ports: string[], sourceRanges: string[], protocol = "tcp"): Resource => ({
  type: FIREWALL,
  name: "c-rule",
  props: { allows: [{ protocol, ports }], sourceRanges },
});
const bucket = (overrides: Record<string, unknown> = {}): Resource => ({
  type: BUCKET,
  name: "c-etcd-backups",
  props: { publicAccessPrevention: "enforced", uniformBucketLevelAccess: true, ...overrides },
});
const controlPlanes = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ ...node("control-plane"), name: `c-cp-${i + 1}` }));
// Three healthy control planes alongside, so only the resource under test can violate anything.
const rulesHit = (resources: Resource[], env: Environment) =>
  checkStack(
    resources.some((r) => r.name.startsWith("c-cp-")) ? resources : [...resources, ...controlPlanes(3)],
    env,
  ).map((v) => v.rule);

describe("rules", () => {
  test.each<[string, Resource[], Environment, string[]]>([
    ["SSH open to the world in prod", [firewall(["22"], ["0.0.0.0/0"])], "prod", ["no-world-open-sensitive-ports"]],
    [
      "etcd inside a wide range in prod",
      [firewall(["2000-3000"], ["0.0.0.0/0"])],
      "prod",
      ["no-world-open-sensitive-ports"],
    ],
    [
      "all protocols to the world in prod",
      [firewall([], ["0.0.0.0/0"], "all")],
      "prod",
      ["no-world-open-sensitive-ports"],
    ],
    ["SSH open to the world in dev (allowed there)", [firewall(["22"], ["0.0.0.0/0"])], "dev", []],
    ["HTTPS to the world in prod (not sensitive)", [firewall(["443"], ["0.0.0.0/0"])], "prod", []],
    ["6443 from an admin range in prod", [firewall(["6443"], ["203.0.113.0/24"])], "prod", []],
    ["a 1 vCPU worker", [node("worker", { machineType: "n1-standard-1" })], "dev", ["node-machine-type"]],
    ["a 2 GB worker", [node("worker", { machineType: "e2-small" })], "dev", ["node-machine-type"]],
    ["an unknown machine type", [node("worker", { machineType: "x9-mega-2" })], "dev", ["node-machine-type"]],
    ["a small load balancer (not a node)", [node("loadbalancer", { machineType: "e2-small" })], "dev", []],
    [
      "a worker with an external IP",
      [node("worker", { networkInterfaces: [{ accessConfigs: [{}] }] })],
      "dev",
      ["no-external-ip-on-nodes"],
    ],
    [
      "the load balancer with an external IP",
      [node("loadbalancer", { networkInterfaces: [{ accessConfigs: [{}] }] })],
      "dev",
      [],
    ],
    [
      "no Secure Boot",
      [
        node("worker", {
          shieldedInstanceConfig: { enableSecureBoot: false, enableVtpm: true, enableIntegrityMonitoring: true },
        }),
      ],
      "dev",
      ["shielded-vm"],
    ],
    ["two control planes in prod", controlPlanes(2), "prod", ["control-plane-quorum"]],
    ["one control plane in prod", controlPlanes(1), "prod", ["control-plane-quorum"]],
    ["one control plane in dev", controlPlanes(1), "dev", []],
    ["three control planes in prod", controlPlanes(3), "prod", []],
    ["a private backup bucket", [bucket()], "prod", []],
    [
      "a backup bucket without public access prevention",
      [bucket({ publicAccessPrevention: "inherited" })],
      "dev",
      ["bucket-not-public"],
    ],
    [
      "a backup bucket that leaves it unset",
      [bucket({ publicAccessPrevention: undefined })],
      "prod",
      ["bucket-not-public"],
    ],
    ["a backup bucket with object ACLs", [bucket({ uniformBucketLevelAccess: false })], "dev", ["bucket-not-public"]],
  ])("%s", (_name, resources, env, expected) => {
    expect(rulesHit(resources, env)).toEqual(expected);
  });
});

describe("the @pulumi/policy wrappers report what the rules find", () => {
  const validate = (policyName: string, r: Resource, environment?: Environment): string[] => {
    const policy = resourcePolicies.find((p) => p.name === policyName)!;
    const reported: string[] = [];
    const args = {
      type: r.type,
      name: r.name,
      props: r.props,
      getConfig: () => (environment ? { environment } : {}),
    } as unknown as ResourceValidationArgs;
    void policy.validateResource(args, (message: string) => reported.push(message));
    return reported;
  };

  test("all policies are mandatory", () => {
    for (const p of [...resourcePolicies, stackPolicy]) expect(p.enforcementLevel).toBe("mandatory");
  });

  test("resource policies", () => {
    expect(validate("no-world-open-sensitive-ports", firewall(["10250"], ["0.0.0.0/0"]), "prod")).toEqual([
      expect.stringContaining("opens 10250 to 0.0.0.0/0"),
    ]);
    expect(validate("no-world-open-sensitive-ports", firewall(["10250"], ["0.0.0.0/0"]), "dev")).toEqual([]);
    // Without a policy config the prod rules apply: a forgotten --policy-pack-config is strict.
    expect(validate("no-world-open-sensitive-ports", firewall(["10250"], ["0.0.0.0/0"]))).toHaveLength(1);
    expect(validate("shielded-vm", node("worker", { shieldedInstanceConfig: undefined }), "dev")).toHaveLength(1);
    expect(validate("bucket-not-public", bucket({ publicAccessPrevention: "inherited" }), "dev")).toEqual([
      'bucket c-etcd-backups lacks public access prevention "enforced"',
    ]);
  });

  test("stack policy", () => {
    const reported: string[] = [];
    const args = {
      resources: controlPlanes(4).map((r) => ({ ...r, urn: r.name })),
      getConfig: () => ({ environment: "prod" }),
    } as unknown as StackValidationArgs;
    void stackPolicy.validateStack(args, (message: string) => reported.push(message));
    expect(reported).toEqual(["4 control planes; prod needs an odd number, at least 3"]);
  });
});

describe("the program's own resources", () => {
  const resourcesOf = async (stack: string) =>
    (await runProgram(readStackFile(stack) as Record<string, string | number | string[]>)).resources
      .filter((r) => r.custom)
      .map((r) => ({ type: r.type, name: r.name, props: r.inputs }));

  test("dev passes as dev; its open adminCidrs would not pass as prod", async () => {
    const dev = await resourcesOf("dev");
    expect(checkStack(dev, "dev")).toEqual([]);
    expect(new Set(checkStack(dev, "prod").map((v) => v.rule))).toEqual(new Set(["no-world-open-sensitive-ports"]));
  });

  test("prod passes as prod", async () => {
    expect(checkStack(await resourcesOf("prod"), "prod")).toEqual([]);
  });
});
