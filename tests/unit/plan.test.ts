import { ClusterConfig, LONGEST_NAME_SUFFIX, RawConfig, resolveConfig } from "../../render/config";
import { readProjectFile, readStackFile } from "../../render/project";
import { DEPLOYER, Plan, SNAPSHOT_STEP, buildPlan, longestChain, names, runsOnMachine } from "../../render/plan";
import { GCE_NAME } from "../../render/gce";
import { parseCidr, contains } from "../../render/cidr";

const defaults = readProjectFile().defaults;
function configOf(values: RawConfig): ClusterConfig {
  const resolved = resolveConfig(values, defaults);
  if (!resolved.config) throw new Error(JSON.stringify(resolved.errors));
  return resolved.config;
}
const planOf = (values: RawConfig): Plan => buildPlan(configOf(values));

describe("nodes", () => {
  const plan = buildPlan(configOf(readStackFile("dev")));

  test("dev: one load balancer, three control planes, two workers with their roles", () => {
    expect(plan.nodes.map((n) => [n.name, n.role])).toEqual([
      ["ha-k8s-dev-lb-1", "loadbalancer"],
      ["ha-k8s-dev-cp-1", "control-plane"],
      ["ha-k8s-dev-cp-2", "control-plane"],
      ["ha-k8s-dev-cp-3", "control-plane"],
      ["ha-k8s-dev-worker-1", "worker"],
      ["ha-k8s-dev-worker-2", "worker"],
    ]);
  });

  test("control planes land on distinct zones; workers are spread too", () => {
    const cps = plan.nodes.filter((n) => n.role === "control-plane");
    expect(new Set(cps.map((n) => n.zone)).size).toBe(3);
    const workers = plan.nodes.filter((n) => n.role === "worker");
    expect(new Set(workers.map((n) => n.zone)).size).toBe(2);
  });

  test("addresses are static, unique, inside the subnet, and the endpoint is the load balancer's", () => {
    const subnet = parseCidr(plan.cluster.subnetCidr);
    if ("error" in subnet) throw new Error(subnet.error);
    const ips = plan.nodes.map((n) => n.internalIp);
    expect(new Set(ips).size).toBe(ips.length);
    for (const ip of ips) {
      const host = parseCidr(`${ip}/32`);
      if ("error" in host) throw new Error(host.error);
      expect(contains(subnet.cidr, host.cidr)).toBe(true);
    }
    expect(plan.endpoint).toEqual({ internalIp: "10.10.0.2", port: 6443 });
    expect(plan.nodes.find((n) => n.role === "loadbalancer")?.internalIp).toBe("10.10.0.2");
    expect(plan.nodes.find((n) => n.name === "ha-k8s-dev-cp-1")?.internalIp).toBe("10.10.0.10");
    expect(plan.nodes.find((n) => n.name === "ha-k8s-dev-worker-1")?.internalIp).toBe("10.10.0.20");
  });

  test("a node keeps its address when the counts change", () => {
    const small = planOf({ workerCount: 2 });
    const large = planOf({ workerCount: 40, controlPlaneCount: 5 });
    for (const node of small.nodes) {
      expect(large.nodes.find((n) => n.name === node.name)?.internalIp).toBe(node.internalIp);
    }
  });

  test("every GCE name fits GCE's rules even with the longest allowed cluster name", () => {
    // The longest name config validation lets through.
    const cluster = "a".repeat(63 - LONGEST_NAME_SUFFIX);
    const plan = planOf({
      clusterName: cluster,
      workerCount: 999,
      loadBalancerCount: 2,
      subnetCidr: "10.10.0.0/20",
      podCidr: "10.244.0.0/14",
    });
    const lb = plan.loadBalancing;
    const all = [
      ...plan.nodes.map((n) => names.node(cluster, n.role, n.index)),
      ...plan.nodes.map((n) => names.nodeAddress(n.name)),
      ...plan.firewall.map((f) => f.name),
      ...[names.network, names.subnet, names.router, names.nat, names.endpointAddress, names.externalAddress].map((f) =>
        f(cluster),
      ),
      lb.healthCheck!.name,
      ...lb.forwardingRules.map((r) => r.name),
      ...lb.instanceGroups.map((g) => g.name),
    ];
    expect(all.length).toBeGreaterThan(2000);
    for (const name of all) expect(name).toMatch(GCE_NAME);
  });
});

describe("firewall", () => {
  const plan = planOf({ adminCidrs: ["0.0.0.0/0"] });
  const rule = (short: string) => {
    const found = plan.firewall.find((r) => r.name === `ha-k8s-${short}`);
    if (!found) throw new Error(`no rule ${short}`);
    return found;
  };
  const opens = (port: number) =>
    plan.firewall.filter(
      (r) =>
        r.protocol === "all" ||
        r.ports.some((p) => {
          const [lo, hi] = p.split("-").map(Number);
          return port >= lo && port <= (hi ?? lo);
        }),
    );

  test("nothing sensitive is ever open to 0.0.0.0/0, even when adminCidrs is", () => {
    for (const port of [22, 2379, 2380, 10250, 10257, 10259]) {
      for (const r of opens(port)) {
        if (port === 22 && r.name === "ha-k8s-lb-ssh") continue; // adminCidrs only, by design
        expect(r.sourceRanges).not.toContain("0.0.0.0/0");
      }
    }
  });

  test("etcd only between control planes; kubelet only from control planes", () => {
    expect(rule("cp-etcd")).toMatchObject({
      ports: ["2379-2380"],
      sourceRanges: [],
      sourceTags: ["ha-k8s-cp"],
      targetTags: ["ha-k8s-cp"],
    });
    expect(rule("kubelet")).toMatchObject({ ports: ["10250"], sourceRanges: [], sourceTags: ["ha-k8s-cp"] });
  });

  test("SSH to nodes only from the jump host; to the jump host only from adminCidrs", () => {
    expect(rule("node-ssh")).toMatchObject({
      ports: ["22"],
      sourceRanges: [],
      sourceTags: ["ha-k8s-lb"],
      targetTags: ["ha-k8s-node", "ha-k8s-lb"],
    });
    const restricted = planOf({ adminCidrs: ["203.0.113.0/24"] });
    expect(restricted.firewall.find((r) => r.name === "ha-k8s-lb-ssh")?.sourceRanges).toEqual(["203.0.113.0/24"]);
    expect(restricted.firewall.find((r) => r.name === "ha-k8s-lb-api")?.sourceRanges).toEqual([
      "203.0.113.0/24",
      "10.10.0.0/22",
    ]);
  });

  test("the retired scheduler/controller-manager ports are not opened", () => {
    expect(opens(10251).filter((r) => r.protocol !== "all")).toEqual([]);
    expect(opens(10252).filter((r) => r.protocol !== "all")).toEqual([]);
  });

  test("Calico VXLAN and Typha between nodes, pod CIDR traffic, NodePorts from the VPC", () => {
    expect(rule("calico-vxlan")).toMatchObject({ protocol: "udp", ports: ["4789"], sourceTags: ["ha-k8s-node"] });
    expect(rule("calico-typha")).toMatchObject({ protocol: "tcp", ports: ["5473"] });
    expect(rule("pods")).toMatchObject({ protocol: "all", sourceRanges: ["10.244.0.0/16"] });
    expect(rule("nodeports")).toMatchObject({
      ports: ["30000-32767"],
      sourceRanges: ["10.10.0.0/22"],
      targetTags: ["ha-k8s-worker"],
    });
  });
});

describe("bootstrap steps", () => {
  const plan = planOf({});
  const step = (id: string) => {
    const found = plan.steps.find((s) => s.id === id);
    if (!found) throw new Error(`no step ${id}`);
    return found;
  };

  test("every dependency exists and the graph has no cycle", () => {
    const ids = new Set(plan.steps.map((s) => s.id));
    expect(ids.size).toBe(plan.steps.length);
    for (const s of plan.steps) for (const d of s.dependsOn) expect(ids).toContain(d);
    expect(() => longestChain(plan.steps)).not.toThrow();
  });

  test("every machine proves a login works, after the network and the SSH path, before its first step", () => {
    const reachable = ["cluster/network", "cluster/load-balancer"];
    for (const node of plan.nodes) {
      const login = step(`${node.name}/login`);
      expect(login).toMatchObject({ kind: "login", node: DEPLOYER, subject: node.name });
      expect(login.dependsOn).toEqual([`${node.name}/vm`, ...reachable]);
      expect(login.rerunWhenReplaced).toEqual([node.name]);
    }
    expect(step("ha-k8s-cp-1/prepare").dependsOn).toEqual(["ha-k8s-cp-1/login"]);
    expect(step("ha-k8s-worker-2/prepare").dependsOn).toEqual(["ha-k8s-worker-2/login"]);
    expect(step("ha-k8s-lb-1/haproxy").dependsOn).toEqual(["ha-k8s-lb-1/login"]);
    expect(step("cluster/load-balancer").dependsOn).toEqual(["ha-k8s-lb-1/vm"]);
    expect(step("ha-k8s-worker-1/vm").dependsOn).toEqual([]);
    // Every step on a machine comes after that machine's login check.
    for (const s of plan.steps.filter(runsOnMachine)) {
      const before = new Set<string>();
      const walk = (id: string): void => {
        for (const dep of step(id).dependsOn) {
          if (before.has(dep)) continue;
          before.add(dep);
          walk(dep);
        }
      };
      walk(s.id);
      expect([s.id, before.has(`${s.node}/login`)]).toEqual([s.id, true]);
    }
  });

  test("a single control plane's cluster is verified after the CNI", () => {
    const single = planOf({ controlPlaneCount: 1 });
    expect(single.steps.find((s) => s.kind === "verify")?.dependsOn).toEqual(
      expect.arrayContaining(["ha-k8s-cp-1/init", "ha-k8s-cp-1/cni"]),
    );
  });

  test("init waits for its own preparation and for HAProxy; the CNI follows init", () => {
    expect(step("ha-k8s-cp-1/init").dependsOn).toEqual(["ha-k8s-cp-1/prepare", "ha-k8s-lb-1/haproxy"]);
    expect(step("ha-k8s-cp-1/cni").dependsOn).toEqual(["ha-k8s-cp-1/init"]);
  });

  test("control planes join one at a time, each after the previous one is Ready", () => {
    // The first join overlaps the CNI install; "Ready" needs the CNI, so membership waits for it.
    expect(step("ha-k8s-cp-2/credentials").dependsOn).toEqual(["ha-k8s-cp-1/init"]);
    expect(step("ha-k8s-cp-2/member").dependsOn).toEqual(["ha-k8s-cp-2/join", "ha-k8s-cp-1/cni"]);
    expect(step("ha-k8s-cp-3/credentials").dependsOn).toEqual(["ha-k8s-cp-2/member"]);
    expect(step("ha-k8s-cp-3/join").dependsOn).toEqual(["ha-k8s-cp-3/prepare", "ha-k8s-cp-3/credentials"]);
  });

  test("workers join in parallel after init, not behind control-plane joins", () => {
    expect(step("workers/credentials").dependsOn).toEqual(["ha-k8s-cp-1/init"]);
    for (const w of ["ha-k8s-worker-1", "ha-k8s-worker-2"]) {
      expect(step(`${w}/join`).dependsOn).toEqual([`${w}/prepare`, "workers/credentials"]);
    }
  });

  test("a replaced machine re-runs its steps; the workers' token refresh re-runs for any of them", () => {
    expect(step("ha-k8s-cp-2/join").rerunWhenReplaced).toEqual(["ha-k8s-cp-2"]);
    expect(step("ha-k8s-cp-2/member").rerunWhenReplaced).toEqual(["ha-k8s-cp-2"]);
    expect(step("workers/credentials").rerunWhenReplaced).toEqual(["ha-k8s-worker-1", "ha-k8s-worker-2"]);
    // Any replaced machine means the cluster is verified again.
    expect(step("cluster/verify").rerunWhenReplaced).toEqual(plan.nodes.map((n) => n.name));
  });

  test("credentials and control-plane membership run on the first control plane", () => {
    expect(step("workers/credentials").node).toBe("ha-k8s-cp-1");
    expect(step("ha-k8s-cp-2/member").node).toBe("ha-k8s-cp-1");
  });

  test("a worker waits for its own Node on itself; its delete-time drain is hosted round-robin", () => {
    const wide = planOf({ controlPlaneCount: 3, workerCount: 7 });
    const find = (id: string) => wide.steps.find((s) => s.id === id)!;
    for (let i = 1; i <= 7; i++) {
      const worker = `ha-k8s-worker-${i}`;
      expect(find(`${worker}/ready`)).toMatchObject({
        node: worker,
        dependsOn: [`${worker}/join`, "ha-k8s-cp-1/cni"],
        rerunWhenReplaced: [worker],
      });
      const host = `ha-k8s-cp-${((i - 1) % 3) + 1}`;
      const removal = find(`${worker}/removal`);
      expect(removal.node).toBe(host);
      // Deleted before the worker's join (its reset) and before its host control plane leaves.
      expect(removal.dependsOn).toEqual([
        `${worker}/join`,
        host === "ha-k8s-cp-1" ? "ha-k8s-cp-1/init" : `${host}/member`,
      ]);
    }
    expect(wide.steps.filter((s) => s.kind === "member").map((s) => s.subject)).toEqual(["ha-k8s-cp-2", "ha-k8s-cp-3"]);
  });

  test("the first control plane runs a fixed number of steps, whatever the worker count", () => {
    // Removal steps it hosts (a share of the workers) run nothing until they are deleted.
    const onFirst = (workers: number) =>
      planOf({ controlPlaneCount: 5, workerCount: workers, podCidr: "10.244.0.0/14" }).steps.filter(
        (s) => s.node === "ha-k8s-cp-1" && s.kind !== "removal",
      ).length;
    expect(onFirst(300)).toBe(onFirst(2));
  });

  test("verification waits for every node", () => {
    const verify = step("cluster/verify");
    expect(verify.dependsOn).toEqual(
      expect.arrayContaining(["ha-k8s-cp-3/member", "ha-k8s-worker-1/ready", "ha-k8s-worker-2/ready"]),
    );
  });

  test.each([3, 5, 7])("the longest chain does not grow with the worker count (%i control planes)", (cps) => {
    const lengths = [0, 2, 20, 100, 300].map(
      (workers) =>
        longestChain(
          planOf({ controlPlaneCount: cps, workerCount: workers, subnetCidr: "10.10.0.0/22", podCidr: "10.244.0.0/14" })
            .steps,
        ).length,
    );
    expect(new Set(lengths).size).toBe(1);
    // load balancer vm, load-balancer, login, prepare, init, credentials + join + member per extra
    // control plane, verify
    expect(lengths[0]).toBe(6 + 3 * (cps - 1));
  });

  test("longestChain rejects a cycle", () => {
    const steps = [
      {
        id: "a",
        kind: "vm" as const,
        node: "n",
        subject: "n",
        dependsOn: ["b"],
        description: "",
        rerunWhenReplaced: [],
      },
      {
        id: "b",
        kind: "vm" as const,
        node: "n",
        subject: "n",
        dependsOn: ["a"],
        description: "",
        rerunWhenReplaced: [],
      },
    ];
    expect(() => longestChain(steps)).toThrow(/cycle/);
  });
});

describe("backup steps", () => {
  const plan = planOf({ controlPlaneCount: 5 });
  const step = (id: string) => plan.steps.find((s) => s.id === id)!;

  test("every control plane sets up the scheduled snapshot once prepared and once the bucket exists", () => {
    for (const i of [1, 2, 3, 4, 5]) {
      expect(step(`ha-k8s-cp-${i}/backup`)).toMatchObject({
        node: `ha-k8s-cp-${i}`,
        dependsOn: [`ha-k8s-cp-${i}/prepare`, "cluster/backup-bucket"],
        rerunWhenReplaced: [`ha-k8s-cp-${i}`],
      });
    }
    expect(plan.steps.filter((s) => s.kind === "backup")).toHaveLength(5);
    expect(step("cluster/backup-bucket").dependsOn).toEqual([]);
  });

  test("the snapshot before changes runs on the first control plane, after init and its backup setup", () => {
    expect(SNAPSHOT_STEP).toBe("cluster/snapshot");
    expect(step(SNAPSHOT_STEP)).toMatchObject({
      kind: "snapshot",
      node: "ha-k8s-cp-1",
      dependsOn: ["ha-k8s-cp-1/init", "ha-k8s-cp-1/backup"],
    });
  });

  test("no bootstrap step waits for a backup step (a Ready cluster does not depend on backups)", () => {
    const backupIds = new Set(plan.steps.filter((s) => ["backup", "snapshot"].includes(s.kind)).map((s) => s.id));
    for (const s of plan.steps.filter((x) => !backupIds.has(x.id))) {
      for (const d of s.dependsOn) expect([s.id, backupIds.has(d)]).toEqual([s.id, false]);
    }
  });

  test("the plan says where snapshots go: a created bucket (named by Pulumi) unless backupBucket is set", () => {
    expect(plan.backup).toEqual({
      bucket: "ha-k8s-etcd-backups-<pulumi-suffix>",
      createBucket: true,
      retentionDays: 14,
      schedule: "hourly",
      etcdVersion: "3.6.8",
    });
    expect(planOf({ backupBucket: "team-backups" }).backup).toMatchObject({
      bucket: "team-backups",
      createBucket: false,
    });
  });
});
