// Issue 9: one HAProxy VM, or two behind GCP passthrough load balancers, with the same endpoint.

import { ProgramRun, diffRuns, runProgram } from "./harness";
import { resolveConfig, RawConfig } from "../../render/config";
import { readProjectFile, readStackFile, listStacks } from "../../render/project";
import { buildPlan, HEALTH_CHECK_RANGES } from "../../render/plan";

const planOf = (values: RawConfig) => buildPlan(resolveConfig(values, readProjectFile().defaults).config!);
const T = {
  instance: "gcp:compute/instance:Instance",
  rule: "gcp:compute/forwardingRule:ForwardingRule",
  backend: "gcp:compute/regionBackendService:RegionBackendService",
  check: "gcp:compute/regionHealthCheck:RegionHealthCheck",
  group: "gcp:compute/instanceGroup:InstanceGroup",
  membership: "gcp:compute/instanceGroupMembership:InstanceGroupMembership",
};

describe("plan", () => {
  test("two HAProxy VMs in different zones on their own addresses; the endpoint stays .2", () => {
    const one = planOf({ loadBalancerCount: 1 });
    const two = planOf({ loadBalancerCount: 2 });
    expect(one.endpoint).toEqual(two.endpoint);
    expect(one.endpoint.internalIp).toBe("10.10.0.2");
    const lbs = two.nodes.filter((n) => n.role === "loadbalancer");
    expect(lbs.map((n) => [n.name, n.internalIp])).toEqual([
      ["ha-k8s-lb-1", "10.10.0.3"],
      ["ha-k8s-lb-2", "10.10.0.4"],
    ]);
    expect(new Set(lbs.map((n) => n.zone)).size).toBe(2);
    expect(one.loadBalancing).toEqual({ mode: "vm", instanceGroups: [], forwardingRules: [] });
  });

  test("plan.json names both VMs, the forwarding rules and the health check", () => {
    const lb = planOf({ loadBalancerCount: 2 }).loadBalancing;
    expect(lb.healthCheck).toEqual({ name: "ha-k8s-lb-health", port: 8404, path: "/healthz" });
    expect(lb.instanceGroups.map((g) => g.instance)).toEqual(["ha-k8s-lb-1", "ha-k8s-lb-2"]);
    expect(lb.forwardingRules).toEqual([
      { name: "ha-k8s-api-internal", scheme: "INTERNAL", address: "10.10.0.2", ports: ["6443"] },
      {
        name: "ha-k8s-api-external",
        scheme: "EXTERNAL",
        address: expect.stringContaining("external"),
        ports: ["6443", "22"],
      },
    ]);
  });

  test("health checkers may reach the monitor port only, and only with two VMs", () => {
    const rule = planOf({ loadBalancerCount: 2 }).firewall.find((r) => r.name === "ha-k8s-lb-health")!;
    expect(rule).toMatchObject({
      protocol: "tcp",
      ports: ["8404"],
      sourceRanges: HEALTH_CHECK_RANGES,
      targetTags: ["ha-k8s-lb"],
    });
    expect(rule.sourceRanges).toEqual(expect.arrayContaining(["35.191.0.0/16", "130.211.0.0/22"]));
    expect(planOf({ loadBalancerCount: 1 }).firewall.find((r) => r.name === "ha-k8s-lb-health")).toBeUndefined();
  });

  test("kubeadm is initialised once every HAProxy VM serves", () => {
    const init = planOf({ loadBalancerCount: 2 }).steps.find((s) => s.kind === "init")!;
    expect(init.dependsOn).toEqual(expect.arrayContaining(["ha-k8s-lb-1/haproxy", "ha-k8s-lb-2/haproxy"]));
  });

  test("loadBalancerCount accepts 1 or 2 and needs two zones for 2", () => {
    const bad = resolveConfig({ loadBalancerCount: 3 }, readProjectFile().defaults);
    expect(bad.errors.map((e) => e.key)).toContain("ha-k8s:loadBalancerCount");
    const oneZone = resolveConfig({ loadBalancerCount: 2, zones: ["us-central1-a"] }, readProjectFile().defaults);
    expect(oneZone.errors.map((e) => e.message).join()).toMatch(/two zones/);
  });

  test("every stack that uses two load balancers is valid", () => {
    for (const stack of listStacks()) {
      expect(resolveConfig(readStackFile(stack), readProjectFile().defaults).errors).toEqual([]);
    }
  });
});

describe("program", () => {
  const base = { "gcp:region": "europe-west1", clusterName: "c" };
  let one: ProgramRun;
  let two: ProgramRun;
  beforeAll(async () => {
    one = await runProgram({ ...base, loadBalancerCount: 1 });
    two = await runProgram({ ...base, loadBalancerCount: 2 });
  });

  test("one VM: no GCP load balancer; the VM holds the endpoint and the external address", () => {
    for (const type of [T.rule, T.backend, T.check, T.group]) expect(one.ofType(type)).toEqual([]);
    const vm = one.byName("c-lb-1");
    const nic = (vm.inputs.networkInterfaces as { networkIp: string; accessConfigs: unknown[] }[])[0];
    expect(nic.networkIp).toBe("10.10.0.2");
    expect(nic.accessConfigs).toHaveLength(1);
  });

  test("two VMs: zonal instance groups, a shared health check, internal and external passthrough rules", () => {
    expect(
      two
        .ofType(T.instance)
        .filter((r) => r.name.startsWith("c-lb-"))
        .map((r) => r.inputs.zone),
    ).toEqual(["europe-west1-b", "europe-west1-c"]);
    expect(two.ofType(T.group).map((g) => g.inputs.zone)).toEqual(["europe-west1-b", "europe-west1-c"]);
    const [check] = two.ofType(T.check);
    expect(check.inputs.httpHealthCheck).toEqual({ port: 8404, requestPath: "/healthz" });
    const rules = two.ofType(T.rule).sort((a, b) => b.name.localeCompare(a.name)); // internal first
    expect(rules.map((r) => [r.name, r.inputs.loadBalancingScheme, r.inputs.ports])).toEqual([
      ["c-api-internal", "INTERNAL", ["6443"]],
      ["c-api-external", "EXTERNAL", ["6443", "22"]],
    ]);
    expect(rules[0].inputs.ipAddress).toBe("10.10.0.2");
    expect(rules[1].inputs.ipAddress).toBe(two.outputs.loadBalancerExternalIp);
    for (const backend of two.ofType(T.backend)) expect((backend.inputs.backends as unknown[]).length).toBe(2);
    // The forwarding rules wait for the VMs, which may first have to release the addresses.
    expect(rules[0].dependsOn).toEqual(["c-lb-1", "c-lb-2"]);
  });

  test("two VMs: no external IP on either; SSH reaches each through the external load balancer", () => {
    for (const name of ["c-lb-1", "c-lb-2"]) {
      const nic = (two.byName(name).inputs.networkInterfaces as { accessConfigs: unknown[] }[])[0];
      expect(nic.accessConfigs).toEqual([]);
    }
    const connection = two.byName("c-lb-2-haproxy").inputs.connection as Record<string, unknown>;
    expect(connection).toMatchObject({ host: "10.10.0.4", proxy: { host: two.outputs.loadBalancerExternalIp } });
  });

  test("the controlPlaneEndpoint is identical for 1 and 2, in outputs and in the kubeadm config", () => {
    expect(two.outputs.controlPlaneEndpoint).toBe(one.outputs.controlPlaneEndpoint);
    for (const run of [one, two]) {
      expect(run.byName("c-cp-1-init").inputs.stdin).toContain("controlPlaneEndpoint: 10.10.0.2:6443");
    }
  });

  test("instance groups have fixed names and never depend on a VM; each VM joins by a membership", () => {
    // Issue 21: a group named after its VM's id went with the delete-before-replace VM, while the
    // backend services still used it (GCE refuses: terraform-provider-google#1853, #6376).
    const groups = two.ofType(T.group);
    expect(groups.map((g) => [g.name, g.inputs.name, g.inputs.zone])).toEqual([
      ["c-lb-1-group", "c-lb-1-group", "europe-west1-b"],
      ["c-lb-2-group", "c-lb-2-group", "europe-west1-c"],
    ]);
    for (const group of groups) {
      expect(group.inputs.instances).toBeUndefined();
      expect(JSON.stringify(group.inputs)).not.toMatch(/id-c-lb|compute\/c-lb/); // nothing of a VM
    }
    const members = two.ofType(T.membership);
    expect(members.map((m) => [m.name, m.inputs])).toEqual([
      [
        "c-lb-1-group-member",
        { instanceGroup: "c-lb-1-group", instance: "https://compute/c-lb-1", zone: "europe-west1-b" },
      ],
      [
        "c-lb-2-group-member",
        { instanceGroup: "c-lb-2-group", instance: "https://compute/c-lb-2", zone: "europe-west1-c" },
      ],
    ]);
    for (const backend of two.ofType(T.backend)) {
      expect(backend.inputs.backends).toEqual([
        { group: "c-lb-1-group-id", balancingMode: "CONNECTION" },
        { group: "c-lb-2-group-id", balancingMode: "CONNECTION" },
      ]);
    }
  });

  test("a changed HAProxy VM changes no group and no backend service", async () => {
    const rolled = await runProgram({ ...base, loadBalancerCount: 2, loadBalancerMachineType: "e2-medium" });
    const changes = diffRuns(two, rolled);
    for (const name of ["c-lb-1-group", "c-lb-2-group", "c-api-internal", "c-api-external"]) {
      expect([name, changes.get(name)]).toEqual([name, "same"]);
    }
  });

  test("SSH through the external load balancer stays on one HAProxy VM per client; the internal one spreads", () => {
    const affinity = Object.fromEntries(two.ofType(T.backend).map((b) => [b.name, b.inputs.sessionAffinity]));
    expect(affinity).toEqual({ "c-api-internal": undefined, "c-api-external": "CLIENT_IP" });
  });

  test("going from 1 to 2 keeps the endpoint address resource; only the lone VM moves", () => {
    const changes = diffRuns(one, two);
    expect(changes.get("c-api")).toBe("same");
    expect(changes.get("c-api-public")).toBe("same");
    expect(changes.get("c-lb-1")).toBe("replace");
    expect(changes.get("c-lb-2")).toBe("create");
    expect(changes.get("c-cp-1")).toBe("same");
  });
});
