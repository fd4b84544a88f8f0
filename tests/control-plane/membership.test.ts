// Membership against the real API server and etcd cluster: member.sh (a node's readiness and, for a
// control plane, its etcd membership), verify.sh (the cluster as a whole, then revoking the join
// credentials) and the delete-time actions (member-remove.sh: drain, etcd member removal, Node
// deletion), each as rendered and run on the machine the plan runs it on. The nodes' kubelets are
// fake (tests/control-plane/kubelet.ts): they TLS-bootstrap with the bootstrap token, register and
// report Ready or not, as a kubelet would. Tests run in order; each leaves the cluster as the next
// expects it.

import { openSealedOutput } from "../../render/secrets";
import * as fs from "fs";
import * as path from "path";
import { apiRequest, credentialsFromKubeconfig } from "./api";
import { ControlPlane } from "./cluster";
import { RunResult, sleep, waitFor } from "./exec";
import { FakeKubelet, startKubelet } from "./kubelet";
import { runDeleteCommand, runStep } from "./bundles";
import { useControlPlane } from "./suite";

const controlPlane = useControlPlane();

async function nodeExists(cp: ControlPlane, name: string): Promise<boolean> {
  const response = await apiRequest(credentialsFromKubeconfig(cp.first.adminConf), "GET", `/api/v1/nodes/${name}`);
  return response.status === 200;
}

async function secretExists(cp: ControlPlane, name: string): Promise<boolean> {
  const response = await apiRequest(
    credentialsFromKubeconfig(cp.first.adminConf),
    "GET",
    `/api/v1/namespaces/kube-system/secrets/${name}`,
  );
  return response.status === 200;
}

/** "<id>, started, <name>, <peer>, <client>, <is learner>" lines of `etcdctl member list`. */
async function etcdMembers(cp: ControlPlane): Promise<string[]> {
  const list = await cp.etcdctl(["member", "list"]);
  if (list.code !== 0) throw new Error(`etcdctl member list: ${list.output}`);
  return list.stdout.trim().split("\n");
}

async function waitForHealthyEtcd(cp: ControlPlane): Promise<void> {
  await waitFor(
    "every etcd member to be healthy",
    async () => {
      const health = await cp.etcdctl(["endpoint", "health", "--cluster"]);
      return health.code === 0 || health.output;
    },
    60_000,
  );
}

function expectClean(result: RunResult): void {
  expect(result.leakedSecret).toBe(false);
  expect(result.timedOut).toBe(false);
}

describe("membership scripts, as rendered, against the real API server and etcd", () => {
  const kubelets = new Map<string, FakeKubelet>();
  const started: FakeKubelet[] = [];
  const kubelet = (name: string) => kubelets.get(name)!;
  const start = async (cp: ControlPlane, name: string, options: Parameters<typeof startKubelet>[2]) => {
    const k = await startKubelet(cp, name, options);
    kubelets.set(name, k);
    started.push(k);
  };

  beforeAll(async () => {
    const cp = controlPlane();
    const [first, ...joined] = [...cp.stack.controlPlanes, ...cp.stack.workers];
    // The first control plane's kubelet has kubeadm's kubelet.conf; every other node TLS-bootstraps
    // with the bootstrap token, as its `kubeadm join` does. The second worker is not Ready yet.
    await start(cp, first.name, { ready: true });
    for (const node of joined) {
      const ready = node.name !== cp.stack.workers[1].name;
      await start(cp, node.name, { ready, bootstrapToken: cp.stack.values.bootstrapToken });
    }
  }, 120_000);

  afterAll(async () => {
    for (const k of started) await k.stop();
    // The API server refused nothing the kubelets did with their own credentials (Node authorizer,
    // NodeRestriction). Other failures are expected here: the tests stop etcd members (HTTP 500).
    expect(started.flatMap((k) => k.refusals)).toEqual([]);
  });

  test("a worker's readiness step runs on the worker with its kubelet's credentials and passes for its Ready Node", async () => {
    const cp = controlPlane();
    const worker = cp.stack.workers[0].name;
    const step = cp.stack.step("ready", worker);
    expect(step.node).toBe(worker);
    const result = await runStep(cp, step);
    expectClean(result);
    expect(result.code).toBe(0);
    expect(result.output).toContain(`${worker} is Ready`);
  });

  test("a worker's readiness step waits while its Node is not Ready and passes once the kubelet reports Ready", async () => {
    const cp = controlPlane();
    const worker = cp.stack.workers[1].name;
    const started = Date.now();
    let finished = false;
    const running = runStep(cp, cp.stack.step("ready", worker)).finally(() => (finished = true));
    await sleep(10_000);
    expect(finished).toBe(false);
    await kubelet(worker).setReady(true);
    const result = await running;
    expectClean(result);
    expect(result.code).toBe(0);
    expect(result.output).toContain(`${worker} is Ready`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(10_000);
  }, 60_000);

  test("a control plane's member step passes once it is Ready, a started voting etcd member at its address, and etcd healthy", async () => {
    const cp = controlPlane();
    const node = cp.stack.controlPlanes[1].name;
    const result = await runStep(cp, cp.stack.step("member", node));
    expectClean(result);
    expect(result.code).toBe(0);
    expect(result.output).toContain(`${node} is Ready and a healthy etcd member`);
  });

  test("verify passes on the healthy cluster and revokes our join credentials, and only ours", async () => {
    const cp = controlPlane();
    const ours = `bootstrap-token-${cp.stack.values.bootstrapToken.split(".")[0]}`;
    expect((await runStep(cp, cp.stack.step("credentials", cp.stack.controlPlanes[1].name))).code).toBe(0);
    // Somebody else's token (the well-known example token of kubeadm's documentation).
    const foreign = await cp.kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1",
        kind: "Secret",
        type: "bootstrap.kubernetes.io/token",
        metadata: { name: "bootstrap-token-abcdef", namespace: "kube-system" },
        stringData: {
          description: "an operator's token",
          "token-id": "abcdef",
          "token-secret": "0123456789abcdef",
          "usage-bootstrap-authentication": "true",
        },
      }),
    });
    expect(foreign.code).toBe(0);
    expect(await secretExists(cp, ours)).toBe(true);
    expect(await secretExists(cp, "kubeadm-certs")).toBe(true);

    const result = await runStep(cp, cp.stack.step("verify", "cluster"));
    expectClean(result);
    expect(result.code).toBe(0);
    const nodes = cp.stack.controlPlanes.length + cp.stack.workers.length;
    expect(result.output).toContain(
      `cluster healthy: ${nodes} nodes Ready, ${cp.stack.controlPlanes.length} etcd members, API ready through ${cp.endpoint}`,
    );
    expect(await secretExists(cp, ours)).toBe(false);
    expect(await secretExists(cp, "kubeadm-certs")).toBe(false);
    expect(await secretExists(cp, "bootstrap-token-abcdef")).toBe(true);
  });

  test("a worker's delete-time removal, on the control plane hosting it, drains the worker and deletes its Node; again once it is gone", async () => {
    const cp = controlPlane();
    const worker = cp.stack.workers[1].name;
    const step = cp.stack.step("removal", worker);
    expect(step.script).toBeUndefined(); // delete-only
    // A pod on the worker (bound directly: no scheduler here); its kubelet removes it once evicted.
    await waitFor(
      "the default ServiceAccount",
      async () => (await cp.kubectl(["get", "serviceaccount", "default"])).code === 0,
      30_000,
    );
    const pod = await cp.kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "workload", namespace: "default" },
        spec: { nodeName: worker, containers: [{ name: "app", image: "registry.k8s.io/pause:3.10.2" }] },
      }),
    });
    expect(pod.code).toBe(0);

    const result = await runDeleteCommand(cp, step);
    expectClean(result);
    expect(result.code).toBe(0);
    expect(result.output).toContain(`draining ${worker}`);
    expect(result.output).toContain("pod/workload evicted");
    expect(result.output).not.toContain("did not complete");
    expect(await nodeExists(cp, worker)).toBe(false);
    expect((await cp.kubectl(["get", "pod", "workload", "--ignore-not-found", "-o", "name"])).stdout).toBe("");

    const again = await runDeleteCommand(cp, step);
    expectClean(again);
    expect(again.code).toBe(0);
    expect(again.output).toContain(`node ${worker} is not in the cluster; nothing to drain`);
    await kubelet(worker).stop();
  }, 180_000);

  test("verify fails naming the missing node, and keeps the join credentials", async () => {
    const cp = controlPlane();
    const worker = cp.stack.workers[1].name;
    expect((await runStep(cp, cp.stack.step("credentials", "workers"))).code).toBe(0);
    const result = await runStep(cp, cp.stack.step("verify", "cluster"), { sleepSeconds: 0 });
    expectClean(result);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain(`FAILED: node ${worker} is not Ready`);
    expect(result.output).toContain("the cluster is not healthy (1 problem(s) above)");
    expect(await secretExists(cp, `bootstrap-token-${cp.stack.values.bootstrapToken.split(".")[0]}`)).toBe(true);
  }, 120_000);

  test("verify fails naming an etcd member that is down", async () => {
    const cp = controlPlane();
    const down = cp.stack.controlPlanes[1];
    await cp.stopEtcdMember(down.name);
    const result = await runStep(cp, cp.stack.step("verify", "cluster"), { sleepSeconds: 0 });
    expectClean(result);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain(`FAILED: the etcd member at ${down.internalIp} is not healthy`);
  }, 120_000);

  test("removing a control plane's etcd member is refused while the others would lose quorum, failing the delete", async () => {
    const cp = controlPlane();
    const [, down, leaving] = cp.stack.controlPlanes; // the second member is still down
    const membersBefore = await etcdMembers(cp);
    const result = await runDeleteCommand(cp, cp.stack.step("member", leaving.name));
    expectClean(result);
    // The delete fails (exit 75), so Pulumi keeps the VM: a member that never answers again
    // would leave the cluster one failure from losing its quorum.
    expect(result.code).toBe(75);
    expect(result.output).not.toContain("continuing teardown");
    expect(result.output).toContain("etcdserver: unhealthy cluster"); // etcd's own refusal
    expect(result.output).toMatch(
      new RegExp(`REFUSED: etcd will not remove the member of ${leaving.name} \\([0-9a-f]+\\)`),
    );
    expect(await etcdMembers(cp)).toEqual(membersBefore);
    await cp.startEtcdMember(down.name);
    await waitForHealthyEtcd(cp);
  }, 120_000);

  test("removing a control plane drains it, removes its etcd member and keeps quorum; again once it is gone", async () => {
    const cp = controlPlane();
    const leaving = cp.stack.controlPlanes[2];
    const step = cp.stack.step("member", leaving.name);
    const result = await runDeleteCommand(cp, step);
    expectClean(result);
    expect(result.code).toBe(0);
    expect(result.output).toMatch(
      new RegExp(`removing etcd member [0-9a-f]+ \\(${leaving.internalIp.replace(/\./g, "\\.")}\\)`),
    );
    const members = await etcdMembers(cp);
    expect(members).toHaveLength(2);
    expect(members.join("\n")).not.toContain(leaving.internalIp);
    await waitForHealthyEtcd(cp);
    // The API still writes through the two remaining members.
    expect((await cp.kubectl(["create", "configmap", "after-removal", "--from-literal=quorum=kept"])).code).toBe(0);
    expect(await nodeExists(cp, leaving.name)).toBe(false);

    const again = await runDeleteCommand(cp, step);
    expectClean(again);
    expect(again.code).toBe(0);
    expect(again.output).toContain(
      `no etcd member with peer URL https://${leaving.internalIp}:2380; nothing to remove`,
    );
    await kubelet(leaving.name).stop();
  }, 180_000);

  test("a control plane's member step fails, naming it, when it is not an etcd member", async () => {
    const cp = controlPlane();
    const gone = cp.stack.controlPlanes[2];
    // Its Node back, as if its kubelet still ran: only etcd is missing.
    await start(cp, gone.name, { ready: true });
    const result = await runStep(cp, cp.stack.step("member", gone.name), { sleepSeconds: 0 });
    expectClean(result);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain(`${gone.name} (${gone.internalIp}) is not a started voting etcd member`);
  }, 120_000);

  test("verify fails naming the control plane whose etcd member is gone", async () => {
    const cp = controlPlane();
    const gone = cp.stack.controlPlanes[2];
    const result = await runStep(cp, cp.stack.step("verify", "cluster"), { sleepSeconds: 0 });
    expectClean(result);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain(`FAILED: no started etcd voting member at ${gone.internalIp}`);
  }, 120_000);

  test("kubeconfig.sh prints the admin kubeconfig sealed; opened with the stack's key it works and is bound by RBAC (not system:masters)", async () => {
    const cp = controlPlane();
    const result = await runStep(cp, cp.stack.step("kubeconfig", cp.stack.controlPlanes[0].name));
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain("client-key-data");
    const opened = openSealedOutput(result.stdout, cp.stack.values.outputKey);
    expect(opened === fs.readFileSync(cp.first.adminConf, "utf8")).toBe(true);
    const conf = path.join(cp.dir, "kubeconfig-output");
    fs.writeFileSync(conf, opened, { mode: 0o600 });
    const me = await cp.kubectl(
      ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"],
      {
        kubeconfig: conf,
      },
    );
    expect(me.stdout).toContain("kubernetes-admin");
    expect(me.stdout).toContain("kubeadm:cluster-admins");
    expect(me.stdout).not.toContain("system:masters");
    expect((await cp.kubectl(["get", "nodes"], { kubeconfig: conf })).code).toBe(0);
  });
});
