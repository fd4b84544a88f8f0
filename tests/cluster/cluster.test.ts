// The real-cluster tier (npm run test:cluster): the dev stack's plan (3 control planes, 2 workers,
// 1 HAProxy VM) as machines on this host (tests/cluster/lab), deployed by running the plan's
// bundles over real SSH as `pulumi up` would (tests/cluster/lab/engine.ts), then changed and broken
// the way clusters are in their life. One cluster for the whole file: each test starts from where the
// previous one left it.

import { LabCluster } from "./lab/cluster";
import { ApiProbeAnswer, Checks } from "./lab/checks";
import { DeployResult } from "./lab/engine";
import { sleep } from "../tools";
import { run } from "../control-plane/exec";
import { durationKey } from "../../bench/model";
import { LabSteps } from "../../bench/lab-durations";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const artifacts = process.env.HA_K8S_LAB_ARTIFACTS;
const lines: string[] = [];
const log = (line: string) => lines.push(`${new Date().toISOString().slice(11, 19)} ${line}`);

/** The deploy succeeded; otherwise the failure (step, machine, output) is the test's message. */
function expectOk(result: DeployResult): void {
  if (!result.ok) throw new Error(`the deployment failed: ${result.failure}\nnot run: ${result.notRun.join(", ")}`);
}

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      if (await condition()) return;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(1000);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

/** A probe's answers in one line: how many per HTTP status, and when each unanswered one started. */
function describeAnswers(answers: readonly ApiProbeAnswer[]): string {
  const byCode = new Map<string, number>();
  for (const a of answers) byCode.set(a.code, (byCode.get(a.code) ?? 0) + 1);
  const unanswered = answers
    .filter((a) => !a.ok)
    .map((a) => `${new Date(a.at).toISOString().slice(11, 23)} (${a.code})`);
  return (
    [...byCode].map(([code, n]) => `${n} x ${code}`).join(", ") +
    (unanswered.length > 0 ? `; not answered: ${unanswered.join(", ")}` : "; every request answered")
  );
}

const describeCluster = artifacts ? describe : describe.skip;
if (!artifacts)
  console.warn("SKIPPING the real-cluster tier: run it with npm run test:cluster (it builds what it needs)");

describeCluster("a real cluster on this machine", () => {
  let cluster: LabCluster;
  let checks: Checks;
  const controlPlanes = () => cluster.stack.plan.nodes.filter((n) => n.role === "control-plane");
  const workers = () => cluster.stack.plan.nodes.filter((n) => n.role === "worker");
  const cp1 = () => controlPlanes()[0].name;

  beforeAll(async () => {
    cluster = await LabCluster.create({ artifacts: artifacts!, log });
    checks = new Checks(cluster);
  }, 120_000);

  // Whatever happened above: nothing of the tier is left on this host.
  afterAll(async () => expect(cluster ? await cluster.end() : []).toEqual([]), 120_000);

  afterEach(async () => {
    // The engine's log of the test, for the CI output when something fails.
    if (lines.length > 0) console.log(lines.splice(0).join("\n"));
    await checks?.stopProbes();
    // A test that failed half-way through a fault leaves no machine off for the next one: powered on,
    // and back in the cluster before the next test starts.
    const off = [...(cluster?.lab.machines.keys() ?? [])].filter((name) => !cluster.lab.isOn(name));
    for (const name of off) cluster.lab.powerOn(name);
    if (off.length > 0)
      await waitFor(
        `${off.join(", ")} back after a failed test`,
        async () =>
          (await checks.nodes()).every((n) => n.ready) &&
          (await checks.etcdHealthyEndpoints(cp1())).length === controlPlanes().length,
        240_000,
      ).catch((error: Error) => console.log(error.message));
  }, 300_000);

  test(
    "a fresh deploy: every step runs, every Node Ready, 3 etcd voters, the API through HAProxy and the kubeconfig output",
    async () => {
      const result = await cluster.up();
      expectOk(result);
      const commands = cluster.stack.plan.steps.filter(
        (s) => !["vm", "network", "load-balancer", "backup-bucket"].includes(s.kind),
      );
      expect(
        result.records
          .filter((r) => r.operation === "create" && r.ok)
          .map((r) => r.id)
          .sort(),
      ).toEqual([...commands.map((s) => s.id), ...cluster.stack.plan.nodes.map((n) => `${n.name}/vm`)].sort());
      // Each step's real duration, for the benchmark's lab column (npm run bench:lab).
      const plan = cluster.stack.plan;
      const steps: LabSteps = {
        recordedAt: new Date().toISOString(),
        host: `${os.cpus().length} x ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
        records: result.records.flatMap((r) => {
          const step = plan.steps.find((s) => s.id === r.id);
          return step && r.operation === "create"
            ? [{ id: r.id, key: durationKey(step, plan), seconds: r.seconds }]
            : [];
        }),
      };
      const stepsFile = path.join(__dirname, "../../bench/out/lab-steps.json");
      fs.mkdirSync(path.dirname(stepsFile), { recursive: true });
      fs.writeFileSync(stepsFile, `${JSON.stringify(steps, null, 2)}\n`);
      for (const kind of ["init", "join", "ready"])
        log(
          `${kind}: ${steps.records
            .filter((r) => r.id.endsWith(`/${kind}`))
            .map((r) => `${r.id.split("/")[0]} ${r.seconds.toFixed(1)} s`)
            .join(", ")}`,
        );

      // Through the stack's kubeconfig output: the external address, NAT'd to HAProxy.
      const nodes = await checks.nodes();
      expect(nodes.map((n) => [n.name, n.ready, n.kubeletVersion]).sort()).toEqual(
        cluster.stack.plan.nodes
          .filter((n) => n.role !== "loadbalancer")
          .map((n) => [n.name, true, `v${cluster.stack.plan.cluster.kubernetesPatch}`])
          .sort(),
      );
      // etcd: one started voting member per control plane, each healthy.
      const members = await checks.etcdMembers(cp1());
      expect(members.map((m) => [m.name, m.peerUrl, m.learner]).sort()).toEqual(
        controlPlanes()
          .map((n) => [n.name, `https://${n.internalIp}:2380`, false])
          .sort(),
      );
      expect((await checks.etcdHealthyEndpoints(cp1())).sort()).toEqual(
        controlPlanes()
          .map((n) => `https://${n.internalIp}:2379`)
          .sort(),
      );
      // The API on the endpoint address (HAProxy), from a worker, as the kubelets reach it.
      const endpoint = `${cluster.stack.plan.endpoint.internalIp}:${cluster.stack.plan.endpoint.port}`;
      expect(await checks.onMachine(workers()[0].name, `curl -ks https://${endpoint}/readyz`)).toBe("ok");
      // verify.sh ran last and passed; the join credentials are gone until the next join.
      expect(result.records.find((r) => r.id === "cluster/verify")?.ok).toBe(true);
      expect(await checks.joinTokens()).toEqual([]);
      // Packages from the signed repositories, held; images through the registry mirror.
      expect(await checks.onMachine(workers()[0].name, "apt-mark showhold | sort")).toBe(
        ["cri-o", "cri-tools", "kubeadm", "kubectl", "kubelet", ""].join("\n"),
      );
      const requests = checks.mirrorRequests().join("\n");
      for (const pulled of [
        "/v2/pause/manifests/",
        "/v2/kube-apiserver/manifests/",
        "/v2/coredns/coredns/manifests/",
      ]) {
        expect(requests).toContain(pulled);
      }
      expect(requests).toMatch(/ns=registry\.k8s\.io/);
      expect(requests).toMatch(/ns=docker\.io/);
    },
    15 * 60_000,
  );

  test(
    "a workload: 2 replicas spread over the workers, its ClusterIP Service answering a pod on another machine",
    async () => {
      const tag = cluster.labImageTag;
      const image = `quay.io/hak8slab/labtool:${tag}`;
      await checks.kubectl(
        ["apply", "-f", "-"],
        JSON.stringify({
          apiVersion: "v1",
          kind: "List",
          items: [
            {
              apiVersion: "apps/v1",
              kind: "Deployment",
              metadata: { name: "echo", namespace: "default" },
              spec: {
                replicas: 2,
                selector: { matchLabels: { app: "echo" } },
                template: {
                  metadata: { labels: { app: "echo" } },
                  spec: {
                    affinity: {
                      podAntiAffinity: {
                        requiredDuringSchedulingIgnoredDuringExecution: [
                          { labelSelector: { matchLabels: { app: "echo" } }, topologyKey: "kubernetes.io/hostname" },
                        ],
                      },
                    },
                    containers: [{ name: "echo", image, args: ["echo", "--listen", ":8080"] }],
                  },
                },
              },
            },
            {
              apiVersion: "v1",
              kind: "Service",
              metadata: { name: "echo", namespace: "default" },
              spec: { selector: { app: "echo" }, ports: [{ port: 80, targetPort: 8080 }] },
            },
          ],
        }),
      );
      await checks.kubectl(["rollout", "status", "deployment/echo", "--timeout=180s"]);
      const pods = JSON.parse(await checks.kubectl(["get", "pods", "-l", "app=echo", "-o", "json"])) as {
        items: { metadata: { name: string }; spec: { nodeName: string } }[];
      };
      const podNodes = new Map(pods.items.map((p) => [p.metadata.name, p.spec.nodeName]));
      expect([...podNodes.values()].sort()).toEqual(
        workers()
          .map((w) => w.name)
          .sort(),
      );

      // A client on the first control plane (another machine than either replica), through the
      // Service's ClusterIP: kube-proxy's rules and the routes between the machines' pod networks.
      const client = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "client", namespace: "default" },
        spec: {
          nodeName: cp1(),
          tolerations: [{ operator: "Exists" }],
          restartPolicy: "Never",
          containers: [
            { name: "client", image, args: ["get", "--timeout", "10s", "http://echo.default.svc.cluster.local"] },
          ],
        },
      };
      const answers = new Set<string>();
      for (let i = 0; i < 4 && answers.size < 2; i++) {
        await checks.kubectl(["delete", "pod", "client", "--ignore-not-found", "--wait=true"]);
        await checks.kubectl(["apply", "-f", "-"], JSON.stringify(client));
        await waitFor(
          "the client pod to finish",
          async () =>
            /Succeeded|Failed/.test(await checks.kubectl(["get", "pod", "client", "-o", "jsonpath={.status.phase}"])),
          120_000,
        );
        const answer = await checks.kubectl(["logs", "client"]);
        const pod = /pod=(\S+)/.exec(answer)?.[1];
        expect(pod && podNodes.get(pod)).toBeTruthy();
        expect(podNodes.get(pod!)).not.toBe(cp1());
        answers.add(pod!);
      }
      expect(answers.size).toBeGreaterThanOrEqual(1);
      // quay.io's name, pulled through the mirror (registryMirror covers quay.io).
      expect(checks.mirrorRequests().join("\n")).toMatch(/\/v2\/hak8slab\/labtool\/manifests\/.*ns=quay\.io/);
    },
    10 * 60_000,
  );

  test(
    "every step run a second time succeeds and changes nothing",
    async () => {
      const machines = cluster.stack.plan.nodes.map((n) => n.name);
      const fingerprint = async () => ({
        nodes: (await checks.nodes()).map((n) => `${n.name} ${n.uid}`).sort(),
        members: (await checks.etcdMembers(cp1())).map((m) => `${m.name} ${m.id}`).sort(),
        services: Object.fromEntries(await Promise.all(machines.map(async (m) => [m, await checks.serviceStarts(m)]))),
        containers: Object.fromEntries(
          await Promise.all(
            controlPlanes().map(async (n) => [n.name, (await checks.onMachine(n.name, "crictl ps -q | sort")).trim()]),
          ),
        ),
        files: Object.fromEntries(
          await Promise.all(
            machines.map(async (m) => [
              m,
              await checks.onMachine(
                m,
                "find /etc/kubernetes /var/lib/kubelet/config.yaml /etc/crio /etc/containers /etc/apt/sources.list.d /etc/cni " +
                  "/etc/haproxy -type f 2>/dev/null | sort | xargs -r sha256sum",
              ),
            ]),
          ),
        ),
      });
      const before = await fingerprint();
      const result = await cluster.up({ rerunAll: true });
      expectOk(result);
      const commands = cluster.stack.plan.steps.filter(
        (s) => !["vm", "network", "load-balancer", "backup-bucket", "removal"].includes(s.kind),
      );
      expect(
        result.records
          .filter((r) => r.operation === "update" && r.ok)
          .map((r) => r.id)
          .sort(),
      ).toEqual(commands.map((s) => s.id).sort());
      expect(await fingerprint()).toEqual(before);
    },
    15 * 60_000,
  );

  test(
    "a control plane killed: the API through HAProxy keeps answering, etcd keeps quorum; powered on again, it rejoins",
    async () => {
      const victim = controlPlanes()[1];
      const before = (await checks.etcdMembers(cp1())).find((m) => m.name === victim.name)!;
      const endpoint = `${cluster.stack.plan.endpoint.internalIp}:${cluster.stack.plan.endpoint.port}`;
      // A new request to the endpoint every 200 ms for 30 s, from a worker, while the machine dies.
      const probe = checks.onMachine(
        workers()[0].name,
        `end=$((SECONDS + 30)); while [ $SECONDS -lt $end ]; do
           started=$(date +%s%3N)
           if curl -ksf --max-time 3 https://${endpoint}/readyz >/dev/null; then echo "$started ok"; else echo "$started failed"; fi
           sleep 0.2; done`,
      );
      await sleep(5000);
      const killedAt = Date.now();
      cluster.lab.powerOff(victim.name);
      const answers = (await probe)
        .trim()
        .split("\n")
        .map((line) => ({ at: Number(line.split(" ")[0]), ok: line.endsWith(" ok") }));
      const failed = answers.filter((a) => !a.ok).map((a) => a.at - killedAt);
      log(
        `the API through HAProxy while ${victim.name} died: ${answers.length - failed.length} answers, ` +
          `failures at ${failed.join(", ") || "none"} ms from the power cut`,
      );
      // Only a request in flight on the dying API server can fail (TCP: HAProxy cannot move a request
      // it has already passed on); every new one is answered by the others (retries, redispatch).
      // Answers all through the 25 s after the power cut (how many depends on the host's load).
      const answeredAfter = answers.filter((a) => a.ok && a.at > killedAt).map((a) => a.at - killedAt);
      expect(answeredAfter.length).toBeGreaterThanOrEqual(10);
      expect(Math.max(...answeredAfter)).toBeGreaterThan(20_000);
      expect(failed.length).toBeLessThanOrEqual(2);
      for (const at of failed) expect(Math.abs(at)).toBeLessThan(3000);
      // Quorum: two of three members healthy, and the cluster takes writes.
      expect((await checks.etcdHealthyEndpoints(cp1())).sort()).toEqual(
        controlPlanes()
          .filter((n) => n !== victim)
          .map((n) => `https://${n.internalIp}:2379`)
          .sort(),
      );
      await checks.kubectl(["create", "configmap", "written-while-cp-2-was-down", "--from-literal=k=v"]);

      cluster.lab.powerOn(victim.name);
      await waitFor(
        `${victim.name} back: its Node Ready and its etcd member healthy`,
        async () =>
          (await checks.nodes()).find((n) => n.name === victim.name)?.ready === true &&
          (await checks.etcdHealthyEndpoints(cp1())).length === controlPlanes().length,
        240_000,
      );
      // The same member, back (not a new one), and nothing for pulumi up to do.
      expect((await checks.etcdMembers(cp1())).find((m) => m.name === victim.name)?.id).toBe(before.id);
      const again = await cluster.up();
      expectOk(again);
      expect(again.records.filter((r) => r.operation !== "same")).toEqual([]);
    },
    10 * 60_000,
  );

  test(
    "scaling up, workers 2 -> 3 and control planes 3 -> 5 in one change: the new worker killed during its join stops the deployment there; the next joins it, with the credentials verify revoked issued again; one etcd member at a time, the API answering throughout",
    async () => {
      const worker3 = "ha-k8s-dev-worker-3";
      expect(await checks.joinTokens()).toEqual([]);
      cluster.reconfigure({ workerCount: 3, controlPlaneCount: 5 });
      const probe = await checks.startApiProbe(workers()[0].name);
      let killed = false;
      const interrupted = await cluster.up({
        onStart: (step) => {
          if (step.id === `${worker3}/join` && !killed) {
            killed = true;
            // Mid-join: kubeadm has started (discovery, TLS bootstrap), the kubelet not yet registered.
            setTimeout(() => cluster.lab.powerOff(worker3), 2500);
          }
        },
      });
      if (interrupted.failure) log(`the deployment stopped: ${interrupted.failure}`);
      // One assertion, so that a deployment that stopped elsewhere, before the join began, names
      // the step that stopped it in the test's own failure message.
      expect({ killed, ok: interrupted.ok, failure: interrupted.failure }).toEqual({
        killed: true,
        ok: false,
        failure: expect.stringContaining(`${worker3}/join on ${worker3} failed`),
      });
      expect(interrupted.notRun).toEqual(expect.arrayContaining([`${worker3}/ready`, "cluster/verify"]));

      cluster.lab.powerOn(worker3);
      const resumed = await cluster.up();
      const answers = await probe.stop();
      expectOk(resumed);
      expect(resumed.records.find((r) => r.id === `${worker3}/join`)).toMatchObject({ operation: "create", ok: true });
      log(`the API through HAProxy while scaling up: ${describeAnswers(answers)}`);
      expect(answers.filter((a) => !a.ok)).toEqual([]);
      // Control planes joined one after the other, each a voting member before the next began.
      const joins = [...interrupted.records, ...resumed.records]
        .filter((r) => r.kind === "join" && r.operation === "create" && r.ok && r.node.includes("-cp-"))
        .map((r) => r.node);
      expect(joins).toEqual(["ha-k8s-dev-cp-4", "ha-k8s-dev-cp-5"]);
      expect((await checks.etcdMembers(cp1())).filter((m) => !m.learner).length).toBe(5);
      expect((await checks.etcdHealthyEndpoints(cp1())).length).toBe(5);
      expect(
        (await checks.nodes())
          .filter((n) => n.ready)
          .map((n) => n.name)
          .sort(),
      ).toEqual([...controlPlanes(), ...workers()].map((n) => n.name).sort());
      expect(await checks.joinTokens()).toEqual([]);
    },
    20 * 60_000,
  );

  test(
    "scaling down, workers 3 -> 2 and control planes 5 -> 3: drained, out of etcd one member at a time and out of the API before the machine goes (no reset: deleted with its VM), the API answering throughout",
    async () => {
      const worker3 = "ha-k8s-dev-worker-3";
      cluster.reconfigure({ workerCount: 2, controlPlaneCount: 3 });
      const probe = await checks.startApiProbe(workers()[0].name);
      const seen: string[] = [];
      const result = await cluster.up({
        beforeDestroy: async (machine) => {
          // Before its VM goes: its Node deleted (a worker's after its drain) and its etcd member removed.
          seen.push(machine);
          expect((await checks.nodes()).map((n) => n.name)).not.toContain(machine);
          expect((await checks.etcdMembers(cp1())).map((m) => m.name)).not.toContain(machine);
        },
      });
      const answers = await probe.stop();
      expectOk(result);
      log(`the API through HAProxy while scaling down: ${describeAnswers(answers)}`);
      expect(answers.filter((a) => !a.ok)).toEqual([]);
      expect(seen.sort()).toEqual(["ha-k8s-dev-cp-4", "ha-k8s-dev-cp-5", worker3]);
      const deletes = result.records.filter((r) => r.operation === "delete").map((r) => r.id);
      // The machines' own undo (leave.sh: kubeadm reset) is not dialled: deleted with their VMs
      // (deletedWith), while the drain and the member removal, which run elsewhere, do run.
      expect(
        result.records
          .filter((r) => r.skippedWithVm)
          .map((r) => r.id)
          .sort(),
      ).toEqual(["ha-k8s-dev-cp-4/join", "ha-k8s-dev-cp-5/join", `${worker3}/join`]);
      for (const ran of [`${worker3}/removal`, "ha-k8s-dev-cp-4/member", "ha-k8s-dev-cp-5/member"])
        expect(result.records.find((r) => r.id === ran && r.operation === "delete")).toMatchObject({ ok: true });
      expect(result.records.find((r) => r.id === `${worker3}/removal`)?.skippedWithVm).toBeUndefined();
      // The drain (the removal, on a control plane) before the machine's own reset; cp-5 left etcd before cp-4.
      expect(deletes.indexOf(`${worker3}/removal`)).toBeLessThan(deletes.indexOf(`${worker3}/join`));
      expect(deletes.indexOf("ha-k8s-dev-cp-5/member")).toBeLessThan(deletes.indexOf("ha-k8s-dev-cp-4/member"));
      expect(deletes.indexOf("ha-k8s-dev-cp-5/member")).toBeLessThan(deletes.indexOf("ha-k8s-dev-cp-5/join"));
      expect((await checks.etcdMembers(cp1())).map((m) => m.name).sort()).toEqual(
        controlPlanes()
          .map((n) => n.name)
          .sort(),
      );
      expect((await checks.nodes()).map((n) => n.name).sort()).toEqual(
        [...controlPlanes(), ...workers()].map((n) => n.name).sort(),
      );
      for (const gone of ["ha-k8s-dev-cp-4", "ha-k8s-dev-cp-5", worker3])
        expect(cluster.lab.machines.has(gone)).toBe(false);
    },
    10 * 60_000,
  );

  test(
    "backups: the timer's service uploads one snapshot, from the etcd leader; npm run restore-etcd brings deleted data back",
    async () => {
      const unit = "ha-k8s-etcd-backup.service";
      const before = await checks.snapshots();
      // As the timer fires on every control plane at once: only the leader uploads.
      const runs = await Promise.all(
        controlPlanes().map((cp) =>
          checks.tryOnMachine(cp.name, `systemctl start ${unit}; cat /var/log/standin/${unit}.log`),
        ),
      );
      for (const r of runs) expect(r.code).toBe(0);
      const uploaded = (await checks.snapshots()).filter((o) => !before.includes(o));
      expect(uploaded).toHaveLength(1);
      expect(runs.filter((r) => /not the etcd leader/.test(r.output))).toHaveLength(controlPlanes().length - 1);

      // Data written, a snapshot, the data deleted, then the restore from the newest snapshot.
      await checks.kubectl(["create", "configmap", "precious", "--from-literal=kept=yes"]);
      await Promise.all(controlPlanes().map((cp) => checks.onMachine(cp.name, `systemctl start ${unit}`)));
      await checks.kubectl(["delete", "configmap", "precious"]);
      // The stack is the lab's (the deployer's pulumi stand-in prints its outputs).
      const [cmd, ...args] = cluster.lab.deployerArgs(["bash", "tools/restore-etcd.sh", "dev", "--yes", "--newest"]);
      const restore = await run(cmd, args, { env: cluster.deployerEnv(), timeoutMs: 10 * 60_000 });
      log(restore.output.trimEnd().split("\n").slice(-12).join("\n"));
      expect(restore.code).toBe(0);
      await waitFor(
        "the API and every Node after the restore",
        async () => {
          const notReady = (await checks.nodes()).filter((n) => !n.ready).map((n) => n.name);
          if (notReady.length > 0) throw new Error(`not Ready: ${notReady.join(", ")}`);
          return true;
        },
        300_000,
      );
      expect(await checks.kubectl(["get", "configmap", "precious", "-o", "jsonpath={.data.kept}"])).toBe("yes");
      expect((await checks.etcdMembers(cp1())).map((m) => m.name).sort()).toEqual(
        controlPlanes()
          .map((n) => n.name)
          .sort(),
      );
      expect((await checks.etcdHealthyEndpoints(cp1())).length).toBe(controlPlanes().length);
    },
    15 * 60_000,
  );

  test(
    "a worker lost outside Pulumi, rebuilt by the next pulumi up: the old deletes meet the new machine and touch nothing",
    async () => {
      const lost = workers()[1].name;
      const others = (await checks.nodes()).filter((n) => n.name !== lost).map((n) => `${n.name} ${n.uid}`);
      const members = (await checks.etcdMembers(cp1())).map((m) => `${m.name} ${m.id}`).sort();
      const oldInstance = cluster.lab.machine(lost).instanceId;
      // Deleted by hand (or preempted): after pulumi refresh the VM is simply missing. Its Node goes
      // NotReady once the node controller's grace period passes.
      cluster.lab.destroyMachine(lost);
      await waitFor(
        `${lost}'s Node NotReady`,
        async () => (await checks.nodes()).find((n) => n.name === lost)?.ready === false,
        180_000,
      );
      const result = await cluster.up();
      expectOk(result);
      const newInstance = cluster.lab.machine(lost).instanceId;
      expect(newInstance).not.toBe(oldInstance);
      // Its steps were replaced (new instance id); the old join's delete (leave.sh) ran on the new
      // machine at the same address and did nothing, saying why.
      expect(result.records.find((r) => r.id === `${lost}/join`)).toMatchObject({ operation: "replace", ok: true });
      expect(lines.join("\n")).toMatch(
        new RegExp(`old delete of ${lost}/join .*SKIPPED: this machine is instance ${newInstance}`),
      );
      // The new machine's Node: Ready, schedulable, annotated with the new instance (not deleted and
      // re-registered, not drained); every other Node and every etcd member untouched.
      await waitFor(
        `${lost} Ready`,
        async () => (await checks.nodes()).find((n) => n.name === lost)?.ready === true,
        180_000,
      );
      expect(
        await checks.kubectl([
          "get",
          "node",
          lost,
          "-o",
          "jsonpath={.metadata.annotations.ha-k8s\\.io/instance-id} {.spec.unschedulable}",
        ]),
      ).toBe(`${newInstance} `);
      expect((await checks.nodes()).filter((n) => n.name !== lost).map((n) => `${n.name} ${n.uid}`)).toEqual(others);
      expect((await checks.etcdMembers(cp1())).map((m) => `${m.name} ${m.id}`).sort()).toEqual(members);
    },
    15 * 60_000,
  );

  /**
   * A lost control plane rebuilt: etcd (asked on `witness`) lists the dead member no more, a new
   * started voter at the machine's address and the other members as they were, every endpoint
   * healthy; its Node Ready and annotated with the new instance.
   */
  const expectRebuiltControlPlane = async (
    lost: string,
    oldMemberId: string,
    keptMembers: readonly string[],
    witness: string,
    newInstance: string,
  ) => {
    const after = await checks.etcdMembers(witness);
    expect(after.map((m) => m.name).sort()).toEqual(
      controlPlanes()
        .map((n) => n.name)
        .sort(),
    );
    const rebuilt = after.find((m) => m.name === lost)!;
    expect(rebuilt.id).not.toBe(oldMemberId);
    const address = controlPlanes().find((n) => n.name === lost)!.internalIp;
    expect(rebuilt).toMatchObject({ peerUrl: `https://${address}:2380`, learner: false });
    expect(after.filter((m) => m.name !== lost).map((m) => `${m.name} ${m.id}`)).toEqual(keptMembers);
    expect(await checks.etcdHealthyEndpoints(witness)).toHaveLength(controlPlanes().length);
    await waitFor(
      `${lost} Ready`,
      async () => (await checks.nodes()).find((n) => n.name === lost)?.ready === true,
      180_000,
    );
    expect(
      await checks.kubectl(["get", "node", lost, "-o", "jsonpath={.metadata.annotations.ha-k8s\\.io/instance-id}"]),
    ).toBe(newInstance);
  };

  test(
    "a control plane (cp-2) lost outside Pulumi, rebuilt by the next pulumi up: its dead etcd member removed first, then it joins as a new one",
    async () => {
      const lost = controlPlanes()[1];
      const others = (await checks.nodes()).filter((n) => n.name !== lost.name).map((n) => `${n.name} ${n.uid}`);
      const before = await checks.etcdMembers(cp1());
      const oldMember = before.find((m) => m.name === lost.name);
      expect(oldMember).toBeDefined();
      const kept = before.filter((m) => m.name !== lost.name).map((m) => `${m.name} ${m.id}`);
      const oldInstance = cluster.lab.machine(lost.name).instanceId;
      // Its VM and disk gone: etcd keeps a quorum (2 of 3) with the dead member still listed.
      cluster.lab.destroyMachine(lost.name);
      await waitFor(
        `${lost.name}'s Node NotReady`,
        async () => (await checks.nodes()).find((n) => n.name === lost.name)?.ready === false,
        180_000,
      );
      expect((await checks.etcdMembers(cp1())).map((m) => m.id)).toContain(oldMember!.id);

      const result = await cluster.up();
      expectOk(result);
      const newInstance = cluster.lab.machine(lost.name).instanceId;
      expect(newInstance).not.toBe(oldInstance);
      for (const kind of ["credentials", "join", "member"])
        expect(result.records.find((r) => r.id === `${lost.name}/${kind}`)).toMatchObject({
          operation: "replace",
          ok: true,
        });
      // The old steps' deletes met the new machine (leave.sh on it, member-remove.sh on cp-1) and did nothing.
      const log = lines.join("\n");
      expect(log).toMatch(
        new RegExp(`old delete of ${lost.name}/join .*SKIPPED: this machine is instance ${newInstance}`),
      );
      expect(log).toMatch(
        new RegExp(`old delete of ${lost.name}/member .*SKIPPED: node ${lost.name} is now instance ${newInstance}`),
      );

      await expectRebuiltControlPlane(lost.name, oldMember!.id, kept, cp1(), newInstance);
      // Every other Node untouched.
      expect((await checks.nodes()).filter((n) => n.name !== lost.name).map((n) => `${n.name} ${n.uid}`)).toEqual(
        others,
      );
    },
    15 * 60_000,
  );

  test(
    "the first control plane (cp-1) lost outside Pulumi, rebuilt by the next pulumi up: it joins the cluster the others kept, with the keys Pulumi holds, never a second init",
    async () => {
      const [lost, witness] = controlPlanes();
      await checks.kubectl(["create", "configmap", "cp1-proof", "--from-literal=kept=yes"]);
      const clusterUid = await checks.kubectl(["get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}"]);
      const others = (await checks.nodes()).filter((n) => n.name !== lost.name).map((n) => `${n.name} ${n.uid}`);
      const before = await checks.etcdMembers(witness.name);
      const oldMember = before.find((m) => m.name === lost.name);
      expect(oldMember).toBeDefined();
      const kept = before.filter((m) => m.name !== lost.name).map((m) => `${m.name} ${m.id}`);
      const oldInstance = cluster.lab.machine(lost.name).instanceId;
      expect((await checks.onMachine(lost.name, "test -f /etc/kubernetes/super-admin.conf && echo init")).trim()).toBe(
        "init",
      );
      // Its VM and disk gone: the others keep etcd's quorum, the API answers through HAProxy.
      cluster.lab.destroyMachine(lost.name);
      await waitFor(
        `${lost.name}'s Node NotReady`,
        async () => (await checks.nodes()).find((n) => n.name === lost.name)?.ready === false,
        180_000,
      );

      const result = await cluster.up();
      expectOk(result);
      const newInstance = cluster.lab.machine(lost.name).instanceId;
      expect(newInstance).not.toBe(oldInstance);
      for (const id of [`${lost.name}/init`, `${lost.name}/cni`, `${lost.name}/kubeconfig`, "cluster/verify"])
        expect(result.records.find((r) => r.id === id)).toMatchObject({ operation: "replace", ok: true });
      // It joined: kubeadm join writes no super-admin.conf, kubeadm init does (the old cp-1 had one).
      expect(
        (
          await checks.onMachine(
            lost.name,
            "test -f /var/lib/ha-k8s/initialised && test -f /etc/kubernetes/admin.conf && " +
              "test ! -e /etc/kubernetes/super-admin.conf && echo joined",
          )
        ).trim(),
      ).toBe("joined");

      // The same cluster (no second init): its data, its kube-system namespace, its other Nodes.
      expect(await checks.kubectl(["get", "configmap", "cp1-proof", "-o", "jsonpath={.data.kept}"])).toBe("yes");
      expect(await checks.kubectl(["get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}"])).toBe(
        clusterUid,
      );
      expect((await checks.nodes()).filter((n) => n.name !== lost.name).map((n) => `${n.name} ${n.uid}`)).toEqual(
        others,
      );
      await expectRebuiltControlPlane(lost.name, oldMember!.id, kept, witness.name, newInstance);
      // Its etcd CA is the one Pulumi holds (the cluster was made with it), and the rejoin's own
      // kubeconfig is gone; the verification revoked the join credentials again.
      expect(
        (
          await checks.onMachine(lost.name, "cat /etc/kubernetes/pki/etcd/ca.crt; test ! -e /var/lib/ha-k8s/rejoin")
        ).trimEnd(),
      ).toBe(cluster.secrets.values.controlPlaneKeys.etcdCaCertPem.trimEnd());
      expect(await checks.joinTokens()).toEqual([]);
    },
    15 * 60_000,
  );

  test(
    "quorum lost (cp-2 and cp-3 gone): the restore refuses to touch anything until told the survivors, restores onto cp-1 alone, and pulumi up rebuilds the other two; the data is back",
    async () => {
      const unit = "ha-k8s-etcd-backup.service";
      const [survivor, ...lost] = controlPlanes();
      // Data, then a snapshot holding it (the leader uploads), then two of three control planes gone.
      await checks.kubectl(["create", "configmap", "quorum-proof", "--from-literal=kept=yes"]);
      const before = await checks.snapshots();
      await Promise.all(controlPlanes().map((cp) => checks.onMachine(cp.name, `systemctl start ${unit}`)));
      expect((await checks.snapshots()).filter((o) => !before.includes(o))).toHaveLength(1);
      for (const cp of lost) cluster.lab.destroyMachine(cp.name);

      const restore = async (extra: string[]) => {
        const [cmd, ...args] = cluster.lab.deployerArgs([
          "bash",
          "tools/restore-etcd.sh",
          "dev",
          "--yes",
          "--newest",
          ...extra,
        ]);
        const result = await run(cmd, args, { env: cluster.deployerEnv(), timeoutMs: 10 * 60_000 });
        log(result.output.trimEnd().split("\n").slice(-12).join("\n"));
        return result;
      };
      // Every control plane by default: the lost ones fail the preflight, nothing is stopped on cp-1,
      // and the tool names the --only that would restore onto the one that answers.
      const refused = await restore([]);
      expect(refused.code).not.toBe(0);
      expect(refused.output).toContain(`cannot log in to ${lost.map((n) => n.name).join(" ")}`);
      expect(refused.output).toContain("--only cp-1");
      expect(await checks.tryOnMachine(survivor.name, "test -f /etc/kubernetes/manifests/etcd.yaml")).toMatchObject({
        code: 0,
      });

      // The documented path (docs/operating.md, "Lost 2 of 3 control planes").
      const restored = await restore(["--only", "cp-1"]);
      expect(restored.code).toBe(0);
      expect((await checks.etcdMembers(survivor.name)).map((m) => m.name)).toEqual([survivor.name]);
      await checks.kubectl(["delete", "node", ...lost.map((n) => n.name)]);
      const result = await cluster.up();
      expectOk(result);
      for (const cp of lost)
        expect(result.records.find((r) => r.id === `${cp.name}/join`)).toMatchObject({
          operation: "replace",
          ok: true,
        });

      // Three voters again, each healthy, every Node Ready, and the data from before the loss.
      const members = await checks.etcdMembers(survivor.name);
      expect(members.map((m) => m.name).sort()).toEqual(
        controlPlanes()
          .map((n) => n.name)
          .sort(),
      );
      expect(members.filter((m) => m.learner)).toEqual([]);
      expect(await checks.etcdHealthyEndpoints(survivor.name)).toHaveLength(controlPlanes().length);
      await waitFor("every Node Ready", async () => (await checks.nodes()).every((n) => n.ready), 300_000);
      expect(await checks.kubectl(["get", "configmap", "quorum-proof", "-o", "jsonpath={.data.kept}"])).toBe("yes");
    },
    25 * 60_000,
  );
});
