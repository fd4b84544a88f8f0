// The real program (index.ts) under Pulumi mocks: what it asks GCP and the machines for.

import { ProgramRun, RecordedResource, failedRun, runProgram } from "./harness";
import { resolveConfig } from "../../render/config";
import { readProjectFile, readStackFile } from "../../render/project";
import { buildPlan, runsOnMachine } from "../../render/plan";
import { renderCloudConfig } from "../../render/cloudinit";

const T = {
  instance: "gcp:compute/instance:Instance",
  address: "gcp:compute/address:Address",
  firewall: "gcp:compute/firewall:Firewall",
  command: "command:remote:Command",
};
const devValues = readStackFile("dev") as Record<string, string | number>;
const devPlan = buildPlan(resolveConfig(devValues, readProjectFile().defaults).config!);

let dev: ProgramRun;
beforeAll(async () => {
  dev = await runProgram(devValues);
});

const commandFor = (run: ProgramRun, stepId: string): RecordedResource => run.byName(stepId.replace("/", "-"));

describe("GCP resources", () => {
  test("counts and types follow the plan", () => {
    const count = (type: string) => dev.ofType(type).length;
    expect(count("gcp:compute/network:Network")).toBe(1);
    expect(count("gcp:compute/subnetwork:Subnetwork")).toBe(1);
    expect(count("gcp:compute/router:Router")).toBe(1);
    expect(count("gcp:compute/routerNat:RouterNat")).toBe(1);
    expect(count(T.firewall)).toBe(devPlan.firewall.length);
    expect(count(T.instance)).toBe(6);
    expect(count(T.address)).toBe(6 + 1); // one static internal address per VM (the lone LB's is the endpoint) + the external one
    expect(count(T.command)).toBe(devPlan.steps.filter(runsOnMachine).length);
    for (const type of [
      "Network",
      "LoadBalancer",
      "NodePool",
      "ClusterBootstrap",
      "ClusterAccess",
      "ClusterPki",
      "ClusterBackup",
    ]) {
      expect(count(`ha-k8s:index:${type}`)).toBe(1);
    }
  });

  test("the subnet is custom-mode and NAT covers it", () => {
    expect(dev.ofType("gcp:compute/network:Network")[0].inputs.autoCreateSubnetworks).toBe(false);
    expect(dev.ofType("gcp:compute/subnetwork:Subnetwork")[0].inputs).toMatchObject({
      ipCidrRange: "10.10.0.0/22",
      region: "europe-west1",
    });
    expect(dev.ofType("gcp:compute/routerNat:RouterNat")[0].inputs).toMatchObject({
      sourceSubnetworkIpRangesToNat: "LIST_OF_SUBNETWORKS",
    });
  });

  test("each VM: machine type, zone, static address, tags, Shielded VM, project keys blocked", () => {
    for (const node of devPlan.nodes) {
      const vm = dev.byName(node.name);
      expect(vm.inputs).toMatchObject({ machineType: node.machineType, zone: node.zone, tags: [...node.tags] });
      const nic = (vm.inputs.networkInterfaces as { networkIp: string; accessConfigs: unknown[] }[])[0];
      expect(nic.networkIp).toBe(node.internalIp);
      // A lone HAProxy VM's address is the endpoint address, reserved by the LoadBalancer.
      const address = node.role === "loadbalancer" ? "ha-k8s-dev-api" : `${node.name}-ip`;
      expect(dev.byName(address).inputs).toMatchObject({ address: node.internalIp, addressType: "INTERNAL" });
      expect(vm.inputs.shieldedInstanceConfig).toEqual({
        enableSecureBoot: true,
        enableVtpm: true,
        enableIntegrityMonitoring: true,
      });
      expect(vm.inputs.metadata).toMatchObject({ "block-project-ssh-keys": "true", "user-data": renderCloudConfig() });
      expect((vm.inputs.metadata as Record<string, string>)["ssh-keys"]).toMatch(/^k8sadmin:ssh-ed25519 /);
      expect((vm.inputs.bootDisk as { initializeParams: { image: string } }).initializeParams.image).toBe(
        "ubuntu-os-cloud/ubuntu-2404-lts-amd64",
      );
      expect(vm.deleteBeforeReplace).toBe(true);
      if (node.role === "loadbalancer") {
        expect(nic.accessConfigs).toHaveLength(1);
      } else {
        expect(nic.accessConfigs).toEqual([]); // no external IP on nodes
      }
    }
  });

  test("machines use a dedicated service account with minimal scopes", () => {
    const sa = dev.ofType("gcp:serviceaccount/account:Account")[0];
    for (const vm of dev.ofType(T.instance)) {
      const account = vm.inputs.serviceAccount as { email: string; scopes: string[] };
      expect(account.email).toBe(`${sa.inputs.accountId}@project.iam.gserviceaccount.com`);
      expect(account.scopes).not.toContain("https://www.googleapis.com/auth/cloud-platform");
    }
  });

  test("firewall rules are created exactly as planned, none sensitive open to the world", () => {
    for (const rule of devPlan.firewall) {
      const fw = dev.byName(rule.name);
      expect(fw.inputs.allows).toEqual([
        { protocol: rule.protocol, ...(rule.ports.length ? { ports: [...rule.ports] } : {}) },
      ]);
      expect(fw.inputs.targetTags).toEqual([...rule.targetTags]);
      expect(fw.inputs.sourceRanges ?? []).toEqual([...rule.sourceRanges]);
      expect(fw.inputs.sourceTags ?? []).toEqual([...rule.sourceTags]);
    }
    const sensitive = dev
      .ofType(T.firewall)
      .filter((fw) =>
        ((fw.inputs.allows as { ports?: string[] }[])[0].ports ?? []).some((p) => /^(2379|10250)/.test(p)),
      );
    expect(sensitive.length).toBeGreaterThan(0);
    for (const fw of sensitive) expect(fw.inputs.sourceRanges ?? []).not.toContain("0.0.0.0/0");
  });

  test("adminCidrs left open draws a warning in preview", () => {
    expect(dev.warnings.join("\n")).toMatch(/ha-k8s:adminCidrs: includes 0.0.0.0\/0/);
  });
});

describe("bootstrap commands", () => {
  test("each command depends on exactly what the plan says", () => {
    for (const step of devPlan.steps.filter(runsOnMachine)) {
      const expected = step.dependsOn.map((id) => {
        const dep = devPlan.steps.find((s) => s.id === id)!;
        if (dep.kind === "network") return "ha-k8s-dev-network"; // the Network component: all of it
        if (dep.kind === "load-balancer") return "ha-k8s-dev-lb"; // the LoadBalancer component
        if (dep.kind === "backup-bucket") return "ha-k8s-dev-backup"; // the ClusterBackup component
        return dep.kind === "vm" ? dep.node : id.replace("/", "-");
      });
      expect([step.id, commandFor(dev, step.id).dependsOn]).toEqual([step.id, expected]);
    }
  });

  test("control-plane joins are serial; worker joins wait for init only", () => {
    expect(commandFor(dev, "ha-k8s-dev-cp-3/credentials").dependsOn).toEqual(["ha-k8s-dev-cp-2-member"]);
    expect(commandFor(dev, "workers/credentials").dependsOn).toEqual(["ha-k8s-dev-cp-1-init"]);
    expect(commandFor(dev, "ha-k8s-dev-worker-2/join").dependsOn).toEqual([
      "ha-k8s-dev-worker-2-prepare",
      "workers-credentials",
    ]);
    expect(commandFor(dev, "ha-k8s-dev-cp-1/init").dependsOn).toEqual([
      "ha-k8s-dev-cp-1-prepare",
      "ha-k8s-dev-lb-1-haproxy",
    ]);
  });

  test("commands reach nodes through the load balancer as jump host; the load balancer directly", () => {
    const join = commandFor(dev, "ha-k8s-dev-worker-2/join").inputs.connection as Record<string, unknown>;
    const lbIp = dev.outputs.loadBalancerExternalIp;
    expect(join).toMatchObject({ host: "10.10.0.21", user: "k8sadmin", proxy: { host: lbIp, user: "k8sadmin" } });
    expect(join.dialErrorLimit).toBeGreaterThan(1);
    const haproxy = commandFor(dev, "ha-k8s-dev-lb-1/haproxy").inputs.connection as Record<string, unknown>;
    expect(haproxy.host).toBe(lbIp);
    expect(haproxy.proxy).toBeUndefined();
  });

  test("a replaced VM re-runs its steps (triggers) and joins are deleted before they are replaced", () => {
    const join = commandFor(dev, "ha-k8s-dev-cp-2/join");
    expect(join.inputs.triggers).toEqual(["id-ha-k8s-dev-cp-2"]);
    expect(join.deleteBeforeReplace).toBe(true);
    expect(join.inputs.addPreviousOutputInEnv).toBe(false);
    expect(commandFor(dev, "ha-k8s-dev-cp-2/member").inputs.triggers).toEqual(["id-ha-k8s-dev-cp-2"]);
  });

  test("delete-time actions exist for joins, memberships and removals, bounded and self-contained", () => {
    for (const step of devPlan.steps.filter((s) => ["join", "member", "removal"].includes(s.kind))) {
      const del = commandFor(dev, step.id).inputs.delete as string;
      expect(del).toMatch(
        /^sudo timeout \d+ bash -s <<'HA_K8S_DELETE' \|\| \{ rc=\$\?; \[ "\$rc" -ne 75 \] \|\| exit 75; echo [^\n]+; \}\n#!\/usr\/bin\/env bash\n/,
      );
      expect(del).toMatch(/\nHA_K8S_DELETE\n$/);
      // Nothing its create step staged is needed: the bundle stages its own inputs.
      expect(del).not.toContain("/var/lib/ha-k8s/steps");
    }
    expect(commandFor(dev, "ha-k8s-dev-cp-1/init").inputs.delete).toBeUndefined();
    expect(commandFor(dev, "ha-k8s-dev-worker-1/ready").inputs.delete).toBeUndefined();
  });

  test("a worker's removal opens no session when created: no create command, only its delete", () => {
    const removal = commandFor(dev, "ha-k8s-dev-worker-2/removal");
    expect(removal.inputs.create).toBeUndefined();
    expect(removal.inputs.stdin).toBeUndefined();
    expect((removal.inputs.connection as { host: string }).host).toBe("10.10.0.11"); // cp-2
    expect(removal.deleteBeforeReplace).toBe(true);
  });

  test("login checks are local commands with the key in their secret stdin, one per machine", () => {
    const logins = dev.ofType("command:local:Command");
    expect(logins.map((c) => c.name).sort()).toEqual(devPlan.nodes.map((n) => `${n.name}-login`).sort());
    const worker = commandFor(dev, "ha-k8s-dev-worker-1/login");
    expect(worker.inputs.create).toBe("bash -s");
    expect(worker.secretInputs).toContain("stdin");
    expect(worker.additionalSecretOutputs).toEqual(expect.arrayContaining(["stdout", "stderr"]));
    expect(worker.inputs.triggers).toEqual(["id-ha-k8s-dev-worker-1"]);
    const stdin = worker.inputs.stdin as string;
    expect(stdin).toContain("fake-ha-k8s-dev-access-ssh"); // the stack's private key (mock)
    expect(stdin).toContain(`JUMP_HOST='${dev.outputs.loadBalancerExternalIp}'`);
    expect(stdin).toContain("TARGET_HOST='10.10.0.20'");
    // The lone HAProxy VM is reached directly.
    const lb = commandFor(dev, "ha-k8s-dev-lb-1/login").inputs.stdin as string;
    expect(lb).toContain(`TARGET_HOST='${dev.outputs.loadBalancerExternalIp}'`);
    expect(lb).toContain("JUMP_HOST=''");
    expect(commandFor(dev, "ha-k8s-dev-worker-1/prepare").dependsOn).toEqual(["ha-k8s-dev-worker-1-login"]);
  });
});

describe("secrets", () => {
  test("stack outputs: kubeconfig and SSH key are secret, addresses are not", () => {
    expect(dev.secretOutputs).toEqual(expect.arrayContaining(["kubeconfig", "sshPrivateKey"]));
    expect(dev.secretOutputs).not.toContain("loadBalancerExternalIp");
    expect(dev.secretOutputs).not.toContain("nodes");
  });

  test("kubeconfig points at the load balancer's external address", () => {
    expect(dev.outputs.kubeconfig).toContain(`server: https://${dev.outputs.loadBalancerExternalIp}:6443`);
  });

  test("commands carrying the token, certificate key or CA key: secret stdin, secret outputs, quiet stdout", () => {
    for (const step of devPlan.steps.filter((s) => ["init", "join", "credentials", "kubeconfig"].includes(s.kind))) {
      const cmd = commandFor(dev, step.id);
      expect([step.id, cmd.secretInputs]).toEqual([step.id, expect.arrayContaining(["stdin", "connection"])]);
      expect(cmd.additionalSecretOutputs).toEqual(expect.arrayContaining(["stdout", "stderr"]));
      expect(cmd.inputs.logging).toBe("stderr");
    }
    const init = commandFor(dev, "ha-k8s-dev-cp-1/init").inputs.stdin as string;
    expect(init).toMatch(/token: [a-z0-9]{6}\.[a-z0-9]{16}/);
    expect(init).toContain("BEGIN PRIVATE KEY");
  });

  test("Pulumi makes every key the control planes share, under kubeadm's names; they reach only the init step, in its secret stdin", () => {
    const cas = dev.resources.filter((r) => r.type === "tls:index/selfSignedCert:SelfSignedCert");
    expect(cas.map((r) => (r.inputs.subject as { commonName: string }).commonName).sort()).toEqual([
      "etcd-ca",
      "front-proxy-ca",
      "kubernetes",
    ]);
    for (const ca of cas) expect([ca.name, ca.ignoreChanges]).toEqual([ca.name, expect.arrayContaining(["subject"])]);
    const keys = ["etcd-ca", "front-proxy-ca", "service-account"].map((k) => `fake-ha-k8s-dev-pki-${k}`);
    const carriers = dev.resources
      .filter((r) => r.type === T.command && keys.some((k) => String(r.inputs.stdin ?? "").includes(k)))
      .map((r) => r.name);
    expect(carriers).toEqual(["ha-k8s-dev-cp-1-init"]);
    const init = commandFor(dev, "ha-k8s-dev-cp-1/init");
    for (const k of keys) expect(init.inputs.stdin).toContain(k);
    expect(init.secretInputs).toContain("stdin");
    // Never an ignored bundle: the engine would give a replaced init (a rebuilt cp-1) its stored one.
    expect(init.ignoreChanges).toEqual([]);
    // A rebuilt cp-1 joins with the keys on disk: its JoinConfiguration carries no certificate key.
    expect(init.inputs.stdin).toMatch(/kind: JoinConfiguration[\s\S]*controlPlane:\n\s+localAPIEndpoint:/);
  });

  test("commands without secrets keep their logs visible", () => {
    const prepare = commandFor(dev, "ha-k8s-dev-worker-1/prepare");
    expect(prepare.secretInputs).not.toContain("stdin");
    expect(prepare.inputs.logging).toBe("stdoutAndStderr");
  });
});

describe("the deploying machine", () => {
  test("up without gcp:project fails before any resource, naming the provider's fallbacks", async () => {
    const failure = await failedRun({ "gcp:project": undefined });
    expect(failure.message).toMatch(
      /gcp:project: is not set, nor any of GOOGLE_PROJECT, GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT, CLOUDSDK_CORE_PROJECT/,
    );
    expect(failure.registered).toEqual([]);
  });

  test("a project from the environment is enough (google-github-actions/auth sets GOOGLE_CLOUD_PROJECT)", async () => {
    process.env.GOOGLE_CLOUD_PROJECT = "from-the-environment";
    try {
      const run = await runProgram({ "gcp:project": undefined });
      expect(run.ofType("gcp:compute/instance:Instance").length).toBe(6);
    } finally {
      delete process.env.GOOGLE_CLOUD_PROJECT;
    }
  });

  test.each([
    ["8", true],
    ["32", false],
    [undefined, false],
  ])("engine parallelism %s: a warning saying what to set when below the plan's needs: %s", async (engine, warned) => {
    if (engine) process.env.PULUMI_NODEJS_PARALLEL = engine;
    try {
      const run = await runProgram(devValues, { preview: true });
      const warning = run.warnings.find((w) => /operations at once/.test(w));
      expect(Boolean(warning)).toBe(warned);
      if (warned)
        expect(warning).toMatch(/pulumi runs at most 8 .*run pulumi up --parallel 32 \(or set PULUMI_PARALLEL=32\)/);
    } finally {
      delete process.env.PULUMI_NODEJS_PARALLEL;
    }
  });
});

describe("invalid configuration", () => {
  test("fails before any resource is registered, listing every problem", async () => {
    const failure = await failedRun({ controlPlaneCount: 4, workerCount: -2 });
    expect(failure.message).toMatch(
      /ha-k8s:controlPlaneCount: 4 is not allowed[\s\S]*ha-k8s:workerCount: -2 is not allowed/,
    );
    expect(failure.registered).toEqual([]);
  });
});
