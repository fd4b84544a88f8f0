// kubeadm's own upgrade of the cluster, with the real kubeadm of both minors against the real control
// plane: the dev stack at the default minor (1.36: kube-apiserver v1.36.3, kubeadm-config uploaded
// by kubeadm 1.36.3's upload-config phase from the rendered ClusterConfiguration) is the old
// version; kubeadm of the next minor's pinned patch (render/versions.ts; 1.37.2) plans and dry-runs
// the upgrade to it on the first control plane, as scripts/upgrade-node.sh runs them there; kubeadm
// refuses what our version rules (render/upgrade.ts) refuse, where it does.
//
// What kubeadm's upgrade reads from a cluster, and how the harness has it (kubeadm's sources in
// cmd/kubeadm/app):
//   - the kubeadm-config, kubelet-config and kube-proxy ConfigMaps (getInitConfigurationFromCluster
//     and componentconfigs.FetchFromCluster in util/config/cluster.go): kubeadm init's upload-config
//     and addon phases (cluster.ts);
//   - the node it runs on: the name from /etc/kubernetes/kubelet.conf or the host name (GetNodeName),
//     its CRI socket from /var/lib/kubelet/instance-config.yaml (GetNodeRegistration), written by
//     kubeadm's kubelet-start phase (machines.ts); kubeadm runs as on the machine, with its
//     /etc/kubernetes, /var/lib/kubelet and host name (machine-view.sh), as root;
//   - the control plane's static Pods: /etc/kubernetes/manifests must hold them (staticPodManifestHealth
//     in phases/upgrade/health.go), and their mirror Pods in kube-system give each component's version
//     (ComponentVersions in phases/upgrade/versiongetter.go) and the API server's advertise address
//     (getAPIEndpointFromPodAnnotation): the fake kubelets mirror the machines' manifests (kubelet.ts);
//   - Ready Nodes labelled control-plane (controlPlaneNodesReady): kubeadm's mark-control-plane phase
//     on each control plane once its kubelet registered (kubelet.ts);
//   - a health-check Job that must complete within a minute (createJob): kube-controller-manager's
//     Job controller makes its Pod, the stand-in scheduler binds it (scheduler.ts) and the node's
//     fake kubelet completes it;
//   - CoreDNS's Deployment and Corefile (RunCoreDNSMigrationCheck in phases/upgrade/preflight.go):
//     kubeadm init's addon phase.
// `upgrade apply` runs as --dry-run (its dry-run client reads the real cluster and writes nothing:
// DryRun in cmd/kubeadm/app/util/apiclient/dryrun.go; the test checks the cluster is unchanged),
// without the two preflight checks that inspect this host instead of the node: SystemVerification
// (kernel, cgroups, the kubelet binary) and ContainerRuntimeVersion (CRI-O's socket).

import * as fs from "fs";
import * as path from "path";
import { parseAllDocuments } from "yaml";
import { kubernetesVersionChange } from "../../render/upgrade";
import { SUPPORTED_KUBERNETES, kubernetesRelease } from "../../render/versions";
import { kubeadmBinary } from "./binaries";
import { ControlPlane } from "./cluster";
import { RunResult, runOk, waitFor } from "./exec";
import { FakeKubelet, startKubelet } from "./kubelet";
import { installPackages, installedPackages, runOnMachine, runStep } from "./bundles";
import { FakeScheduler } from "./scheduler";
import { TestStack, renderTestStack, testStackConfig } from "./stack";
import { HOST_PATHS, fingerprint, useControlPlane } from "./suite";

const controlPlane = useControlPlane();

/** The supported minors around the stack's (1.35 < 1.36 < 1.37). */
const minors = Object.keys(SUPPORTED_KUBERNETES);
function neighbour(minor: string, offset: number): string {
  const found = minors[minors.indexOf(minor) + offset];
  if (!found) throw new Error(`no supported minor ${offset > 0 ? "after" : "before"} ${minor}`);
  return found;
}

/** The preflight checks of `upgrade apply` that inspect the host the test runs on, not the node. */
const HOST_CHECKS = "--ignore-preflight-errors=SystemVerification,ContainerRuntimeVersion";

/** A component's image tag in `kubeadm config images list` of that kubeadm for that version. */
async function imageTag(kubeadm: string, version: string, image: string): Promise<string> {
  const list = await runOk(kubeadm, ["config", "images", "list", "--kubernetes-version", version]);
  const line = list.split("\n").find((l) => l.startsWith(`registry.k8s.io/${image}:`));
  if (!line) throw new Error(`kubeadm lists no ${image} image:\n${list}`);
  return line.slice(line.indexOf(":") + 1).trim();
}

/** The files `upgrade apply --dry-run` says it would write, by path, parsed. */
function wouldWrite(output: string): Map<string, Record<string, unknown>> {
  const files = new Map<string, Record<string, unknown>>();
  const marker = /\[dryrun\] Would write file "([^"]+)" with content:\n/g;
  const found = [...output.matchAll(marker)];
  for (const [i, match] of found.entries()) {
    const start = match.index + match[0].length;
    const end = i + 1 < found.length ? found[i + 1].index : output.length;
    // The content ends where kubeadm's next line of its own starts.
    const text = output.slice(start, end).split(/\n(?=\[|[A-Z]\d{4} )/)[0];
    files.set(match[1], parseAllDocuments(text)[0].toJS() as Record<string, unknown>);
  }
  return files;
}

const containerOf = (pod: Record<string, unknown>) =>
  (pod as { spec: { containers: { image: string; command: string[] }[] } }).spec.containers[0];

/** Every Kubernetes object `upgrade apply --dry-run` prints, as kind/name -> object. */
function printedObjects(output: string): Map<string, Record<string, unknown>> {
  const objects = new Map<string, Record<string, unknown>>();
  for (const chunk of output.split(/\n---\n/)) {
    const text = chunk.split(/\n(?=\[)/)[0];
    try {
      const doc = parseAllDocuments(text)[0]?.toJS() as { kind?: string; metadata?: { name?: string } } | null;
      if (doc?.kind && doc.metadata?.name) objects.set(`${doc.kind}/${doc.metadata.name}`, doc);
    } catch {
      // kubeadm's own lines between objects
    }
  }
  return objects;
}

function clusterConfiguration(cp: ControlPlane): Promise<string> {
  return cp
    .kubectl(["-n", "kube-system", "get", "configmap", "kubeadm-config", "-o", "jsonpath={.data.ClusterConfiguration}"])
    .then((r) => r.stdout);
}

describe("kubeadm's upgrade of the running cluster to the next minor, with the real kubeadm of both", () => {
  const kubelets: FakeKubelet[] = [];
  let scheduler: FakeScheduler | undefined;
  let from = "";
  let to = "";
  let previous = "";
  let kubeadmFrom = "";
  let kubeadmTo = "";
  let kubeadmPrevious = "";
  let first = "";
  let hostBefore: string[] = [];

  const onFirst = (kubeadm: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> =>
    runOnMachine(controlPlane(), first, kubeadm, args, { env, timeoutMs: 180_000 });

  beforeAll(async () => {
    const cp = controlPlane();
    hostBefore = await Promise.all(HOST_PATHS.map(fingerprint));
    const minor = cp.stack.config.kubernetesVersion;
    from = cp.binaries.kubernetesVersion;
    to = kubernetesRelease(neighbour(minor, 1)).patch;
    previous = kubernetesRelease(neighbour(minor, -1)).patch;
    kubeadmFrom = cp.binaries.kubeadm;
    kubeadmTo = kubeadmBinary(to);
    kubeadmPrevious = kubeadmBinary(previous);
    first = cp.stack.controlPlanes[0].name;
    // Every node's kubelet, the control planes marked by kubeadm, and a scheduler for the Pods.
    const [firstNode, ...joined] = [...cp.stack.controlPlanes, ...cp.stack.workers];
    kubelets.push(await startKubelet(cp, firstNode.name, { ready: true }));
    for (const node of joined) {
      kubelets.push(await startKubelet(cp, node.name, { ready: true, bootstrapToken: cp.stack.values.bootstrapToken }));
    }
    scheduler = new FakeScheduler(cp);
    scheduler.start();
  }, 180_000);

  afterAll(async () => {
    await scheduler?.stop();
    for (const k of kubelets) await k.stop();
    // Everything the kubelets and the scheduler did with their own credentials went through.
    expect([...kubelets.map((k) => k.lastError), scheduler?.lastError ?? ""].filter(Boolean)).toEqual([]);
    expect(await Promise.all(HOST_PATHS.map(fingerprint))).toEqual(hostBefore);
  });

  test("the old version: the API server and the kubeadm-config ConfigMap from the rendered ClusterConfiguration", async () => {
    const cp = controlPlane();
    expect(from).toBe(kubernetesRelease(cp.stack.config.kubernetesVersion).patch);
    expect(await runOk(kubeadmTo, ["version", "-o", "short"])).toBe(`v${to}\n`);
    const version = await cp.kubectl(["version", "-o", "json"]);
    expect(JSON.parse(version.stdout)).toMatchObject({ serverVersion: { gitVersion: `v${from}` } });
    const config = await clusterConfiguration(cp);
    expect(config).toMatch(new RegExp(`^kubernetesVersion: v${from.replace(/\./g, "\\.")}$`, "m"));
    expect(config).toContain(`controlPlaneEndpoint: ${cp.endpoint}`);
  });

  test("kubeadm of the next minor: `upgrade plan` passes kubeadm's health checks and plans every component to the new version", async () => {
    const cp = controlPlane();
    const result = await onFirst(kubeadmTo, ["upgrade", "plan", `v${to}`]);
    expect(result.output).toContain(`[upgrade/versions] Cluster version: ${from}`);
    expect(result.code).toBe(0);
    expect(result.output).toContain("[upgrade] Running cluster health checks");
    expect(result.output).toContain(`[upgrade/versions] kubeadm version: v${to}`);
    expect(result.output).toContain(`[upgrade/versions] Target version: v${to}`);
    expect(result.output).not.toContain("ERROR");
    // The health check's Job really ran: bound by the scheduler, completed by the kubelet.
    expect(scheduler!.bound.some((b) => b.startsWith("kube-system/upgrade-health-check-"))).toBe(true);

    const row = (...cells: string[]) =>
      new RegExp(`^${cells.map((c) => c.replace(/\./g, "\\.")).join("\\s+")}\\s*$`, "m");
    // Each kubelet, to be upgraded after the control plane.
    for (const node of [...cp.stack.controlPlanes, ...cp.stack.workers]) {
      expect(result.output).toMatch(row("kubelet", node.name, `v${from}`, `v${to}`));
    }
    // The control plane's components, read from their mirror Pods, on the node that runs them.
    for (const component of ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]) {
      expect(result.output).toMatch(row(component, first, `v${from}`, `v${to}`));
    }
    expect(result.output).toMatch(row("kube-proxy", from, `v${to}`));
    // The addon and etcd versions each kubeadm deploys for its version.
    const dns = [
      await imageTag(kubeadmFrom, `v${from}`, "coredns/coredns"),
      await imageTag(kubeadmTo, `v${to}`, "coredns/coredns"),
    ];
    expect(result.output).toMatch(row("CoreDNS", ...dns));
    const etcd = [await imageTag(kubeadmFrom, `v${from}`, "etcd"), await imageTag(kubeadmTo, `v${to}`, "etcd")];
    expect(etcd[0]).toBe(`${kubernetesRelease(cp.stack.config.kubernetesVersion).etcdVersion}-0`);
    for (const node of cp.stack.controlPlanes) expect(result.output).toMatch(row("etcd", node.name, ...etcd));
    expect(result.output).toContain(`kubeadm upgrade apply v${to}\n`);
    // The component configurations need no manual step.
    expect(result.output).toMatch(row("kubelet.config.k8s.io", "v1beta1", "v1beta1", "no"));
  }, 200_000);

  test("kubeadm of the next minor: `upgrade apply --dry-run` would write the control plane's manifests with the new images and upgrade the addons, changing nothing", async () => {
    const cp = controlPlane();
    const machine = cp.machine(first);
    const before = await Promise.all([fingerprint(machine.kubernetesDir), fingerprint(machine.kubeletDir)]);
    const configBefore = await clusterConfiguration(cp);
    const dryRunDir = fs.mkdtempSync(path.join(cp.dir, "upgrade-apply-dry-run-"));

    const result = await onFirst(kubeadmTo, ["upgrade", "apply", `v${to}`, "--dry-run", "--yes", HOST_CHECKS], {
      KUBEADM_UPGRADE_DRYRUN_DIR: dryRunDir,
    });
    expect(result.output).toContain(`[upgrade/preflight] You have chosen to upgrade the cluster version to "v${to}"`);
    expect(result.code).toBe(0);
    expect(result.output).toContain(`[upgrade/versions] Cluster version: v${from}`);
    expect(result.output).toContain(`[dryrun] Would upgrade your static Pod-hosted control plane to version "v${to}"`);
    expect(result.output).toContain("[dryrun] Would upload the kubeadm ClusterConfiguration to a ConfigMap");
    expect(result.output).toContain("[upgrade/successful] Finished dryrunning successfully!");
    // Only the two host checks were skipped; everything else of preflight passed.
    expect(result.output.match(/\[WARNING [A-Za-z]+\]/g)?.sort()).toEqual([
      "[WARNING ContainerRuntimeVersion]",
      "[WARNING SystemVerification]",
    ]);

    // The static Pod manifests it would write: the new images, the flags of the rendered
    // configuration kept (the node's address, the Service range, the certificates in /etc/kubernetes).
    const files = wouldWrite(result.output);
    for (const component of ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]) {
      const manifest = files.get(`/etc/kubernetes/manifests/${component}.yaml`);
      expect({ component, image: manifest && containerOf(manifest).image }).toEqual({
        component,
        image: `registry.k8s.io/${component}:v${to}`,
      });
    }
    const apiserver = containerOf(files.get("/etc/kubernetes/manifests/kube-apiserver.yaml")!).command;
    const node = cp.stack.controlPlanes[0];
    expect(apiserver).toEqual(
      expect.arrayContaining([
        `--advertise-address=${node.internalIp}`,
        `--service-cluster-ip-range=${cp.stack.config.serviceCidr}`,
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
        "--etcd-servers=https://127.0.0.1:2379",
      ]),
    );
    // The kubelet's files it would rewrite keep the node's CRI socket (CRI-O).
    expect(fs.readFileSync(path.join(dryRunDir, "instance-config.yaml"), "utf8")).toContain(
      "unix:///var/run/crio/crio.sock",
    );
    // The addons it would apply: CoreDNS and kube-proxy of the new version.
    const objects = printedObjects(result.output);
    const image = (key: string) =>
      (objects.get(key) as { spec?: { template: { spec: { containers: { image: string }[] } } } } | undefined)?.spec
        ?.template.spec.containers[0].image;
    expect(image("Deployment/coredns")).toBe(
      `registry.k8s.io/coredns/coredns:${await imageTag(kubeadmTo, `v${to}`, "coredns/coredns")}`,
    );
    expect(image("DaemonSet/kube-proxy")).toBe(`registry.k8s.io/kube-proxy:v${to}`);

    // A dry run: the machine, the cluster's configuration and the API server are as before.
    expect(await Promise.all([fingerprint(machine.kubernetesDir), fingerprint(machine.kubeletDir)])).toEqual(before);
    expect(await clusterConfiguration(cp)).toBe(configBefore);
    expect(JSON.parse((await cp.kubectl(["version", "-o", "json"])).stdout)).toMatchObject({
      serverVersion: { gitVersion: `v${from}` },
    });
  }, 200_000);

  test("a version that skips a minor: kubeadm's `upgrade apply` refuses it, as our rules do; its `upgrade plan` checks only the cluster", async () => {
    const cp = controlPlane();
    const [major, minor] = to.split(".").map(Number);
    const skipping = `v${major}.${minor + 1}.0`;
    // Our rules: not a supported minor, so the configuration is refused before any plan.
    expect(() => testStackConfig(cp.stack.name, `${major}.${minor + 1}`)).toThrow(/kubernetesVersion/);

    const apply = await onFirst(kubeadmTo, ["upgrade", "apply", skipping, "--dry-run", "--yes", HOST_CHECKS]);
    expect(apply.code).not.toBe(0);
    expect(apply.output).toContain(
      "error execution phase preflight: the version argument is invalid due to these fatal errors:",
    );
    expect(apply.output).toContain(
      `Specified version to upgrade to "${skipping}" is too high; kubeadm can upgrade only 1 minor version at a time`,
    );
    expect(apply.output).toContain(
      `Specified version to upgrade to "${skipping}" is at least one minor release higher than the kubeadm minor release (${minor + 1} > ${minor}). Such an upgrade is not supported`,
    );
    expect(apply.output).not.toContain("Would write file");

    // `upgrade plan` enforces no version policy: it passes, and says kubeadm must be upgraded first.
    // The refusal before any change is apply's preflight (upgrade-node.sh runs both).
    const plan = await onFirst(kubeadmTo, ["upgrade", "plan", skipping]);
    expect(plan.code).toBe(0);
    expect(plan.output).toContain(
      `Note: Before you can perform this upgrade, you have to update kubeadm to ${skipping}.`,
    );
  }, 200_000);

  test("the new version with the old kubeadm: refused until kubeadm is upgraded first (upgrade-node.sh's order)", async () => {
    const apply = await onFirst(kubeadmFrom, ["upgrade", "apply", `v${to}`, "--dry-run", "--yes", HOST_CHECKS]);
    expect(apply.code).not.toBe(0);
    const [, minor] = to.split(".").map(Number);
    expect(apply.output).toContain(
      `Specified version to upgrade to "v${to}" is at least one minor release higher than the kubeadm minor release (${minor} > ${minor - 1}). Such an upgrade is not supported`,
    );
  }, 200_000);

  test("a downgrade: refused by our rules; kubeadm refuses it here only through the new kubeadm's minimum and the old one's CoreDNS check", async () => {
    const cp = controlPlane();
    // Our rules refuse every downgrade, naming the key's allowed next step.
    const change = kubernetesVersionChange(from, neighbour(cp.stack.config.kubernetesVersion, -1));
    expect(change).toMatchObject({ kind: "refused", problem: expect.stringContaining("downgrades are not supported") });

    // The new minor's kubeadm: the old version is below what it deploys at all.
    const newer = await onFirst(kubeadmTo, ["upgrade", "apply", `v${previous}`, "--dry-run", "--yes", HOST_CHECKS]);
    expect(newer.code).not.toBe(0);
    const [, minor] = from.split(".").map(Number);
    expect(newer.output).toContain(
      `this version of kubeadm only supports deploying clusters with the control plane version >= 1.${minor}.0. Current version: v${previous}`,
    );

    // The old minor's kubeadm refuses it, but only because it cannot migrate this cluster's CoreDNS back.
    const older = await onFirst(kubeadmPrevious, [
      "upgrade",
      "apply",
      `v${previous}`,
      "--dry-run",
      "--yes",
      HOST_CHECKS,
    ]);
    expect(older.code).not.toBe(0);
    const dns = (await imageTag(kubeadmFrom, `v${from}`, "coredns/coredns")).replace(/^v/, "");
    expect(older.output).toContain(`[ERROR CoreDNSUnsupportedPlugins]: start version '${dns}' not supported`);
    expect(older.output).toContain(
      `[ERROR CoreDNSMigration]: CoreDNS will not be upgraded: start version '${dns}' not supported`,
    );
    const plan = await onFirst(kubeadmPrevious, ["upgrade", "plan", `v${previous}`]);
    expect(plan.code).not.toBe(0);
    expect(plan.output).toContain(
      `[ERROR CoreDNSMigration]: CoreDNS will not be upgraded: start version '${dns}' not supported`,
    );
    // Its version policy allows one minor back (MaximumAllowedMinorVersionDowngradeSkew = 1 in
    // phases/upgrade/policy.go): without the CoreDNS checks the dry run passes. Our rules are the guard.
    const skipped = await onFirst(kubeadmPrevious, ["upgrade", "apply", `v${previous}`, "--dry-run", "--yes",
      `${HOST_CHECKS},CoreDNSUnsupportedPlugins,CoreDNSMigration`]); // prettier-ignore
    expect(skipped.output).toContain("[upgrade/successful] Finished dryrunning successfully!");
    expect(skipped.code).toBe(0);
  }, 200_000);

  describe("upgrade-node.sh on the first control plane, as rendered for the upgrade, with the real kubeadm", () => {
    // The stack rendered as `pulumi up` renders it after `pulumi config set kubernetesVersion <next>`
    // on this cluster (the last deployment's output: the running patch): its first upgrade step is
    // kubeadm's plan and apply on the first control plane. Debian's packages are the stubs' list
    // (apt-get installs kubeadm 1.37.2-1.1: the wrapper then runs the real kubeadm 1.37.2), the
    // wrapper runs `upgrade apply` as --dry-run, systemd is the systemctl stub (a kubelet restart
    // makes the fake kubelet report the installed version). kubectl, etcdctl (through the crictl
    // stub) and the API server are real.
    let upgrade: TestStack;
    let env: NodeJS.ProcessEnv;
    const deb = (patch: string) => kubernetesRelease(patch.split(".").slice(0, 2).join(".")).debVersion;

    beforeAll(() => {
      const cp = controlPlane();
      const config = testStackConfig(cp.stack.name, neighbour(cp.stack.config.kubernetesVersion, 1));
      upgrade = renderTestStack(path.join(cp.dir, "render-upgrade"), cp.ca, config, cp.stack.name, {
        kubernetesVersion: from,
      });
      env = { HA_K8S_TEST_KUBEADMS: `${from}=${kubeadmFrom} ${to}=${kubeadmTo}` };
      // The packages prepare-node.sh installed for the running minor; CRI-O from its stream.
      installPackages(cp, first, {
        kubeadm: deb(from),
        kubelet: deb(from),
        kubectl: deb(from),
        "cri-o": `${cp.stack.config.kubernetesVersion}.0-1.1`,
      });
    });

    const unschedulable = async (cp: ControlPlane, node: string) =>
      (await cp.kubectl(["get", "node", node, "-o", "jsonpath={.spec.unschedulable}"])).stdout;

    test("kubeadm's plan refuses while a control plane is NotReady: the step stops with kubeadm's reason, before apply, the node untouched", async () => {
      const cp = controlPlane();
      const step = upgrade.step("upgrade", first);
      expect(step.id).toBe(`${first}/upgrade`);
      const notReady = cp.stack.controlPlanes[1].name;
      const kubelet = kubelets.find((k) => k.node.name === notReady)!;
      await kubelet.setReady(false);
      try {
        const result = await runStep(cp, step, { env, stack: upgrade });
        expect(result.leakedSecret).toBe(false);
        expect(result.code).not.toBe(0);
        expect(result.output).toContain(
          `[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [${notReady}]`,
        );
        expect(result.output).toContain(
          `kubeadm upgrade plan refuses v${to} (its reasons above); the cluster is unchanged (only this node's ` +
            `package repositories and kubeadm are at ${upgrade.config.kubernetesVersion})`,
        );
        expect(result.output).not.toContain("as --dry-run");
      } finally {
        await kubelet.setReady(true);
      }
      // kubeadm was upgraded first (kubeadm's procedure), nothing else; the node was not drained.
      expect(installedPackages(cp, first)).toMatchObject({ kubeadm: deb(to), kubelet: deb(from), kubectl: deb(from) });
      expect(await unschedulable(cp, first)).toBe("");
    }, 300_000);

    test("the first control plane's step: the real kubeadm's plan passes, apply (dry run) succeeds, then drain, packages, kubelet back at the new version, uncordon", async () => {
      const cp = controlPlane();
      const machine = cp.machine(first);
      const manifestsBefore = await fingerprint(machine.manifests);
      const result = await runStep(cp, upgrade.step("upgrade", first), { env, stack: upgrade });
      expect(result.leakedSecret).toBe(false);
      expect(result.timedOut).toBe(false);
      expect(result.output).toContain(`${first} runs Kubernetes v${to}`);
      expect(result.code).toBe(0);
      // kubeadm's plan as the script shows it, by the kubeadm it installed.
      expect(result.output).toContain(`kubeadm upgrade plan v${to}`);
      expect(result.output).toContain(`[upgrade/versions] kubeadm version: v${to}`);
      expect(result.output).toContain(`\tkubeadm upgrade apply v${to}\n`);
      // Then kubeadm's apply, dry.
      expect(result.output).toContain(
        `kubeadm (test machine): running 'kubeadm upgrade apply v${to} --yes' as --dry-run`,
      );
      expect(result.output).toContain(
        `[dryrun] Would upgrade your static Pod-hosted control plane to version "v${to}"`,
      );
      expect(result.output).toContain("[upgrade/successful] Finished dryrunning successfully!");
      // The node drained itself through the API (the real kubectl drain), came back and uncordoned.
      expect(result.output).toContain(`node/${first} cordoned`);
      expect(result.output).toContain(`node/${first} drained`);
      expect(result.output).toContain(`node/${first} uncordoned`);
      expect(await unschedulable(cp, first)).toBe("");
      const version = await cp.kubectl(["get", "node", first, "-o", "jsonpath={.status.nodeInfo.kubeletVersion}"]);
      expect(version.stdout).toBe(`v${to}`);
      // Packages of the new minor; CRI-O's drop-in (its pause image) installed.
      expect(installedPackages(cp, first)).toEqual({
        kubeadm: deb(to),
        kubelet: deb(to),
        kubectl: deb(to),
        "cri-o": `${upgrade.config.kubernetesVersion}.0-1.1`,
      });
      const dropIn = path.join(machine.root, "etc/crio/crio.conf.d/20-ha-k8s.conf");
      expect(fs.readFileSync(dropIn, "utf8")).toBe(
        fs.readFileSync(upgrade.staged(upgrade.step("upgrade", first), "crio.conf"), "utf8"),
      );
      // apply was a dry run: the control plane and the cluster's configuration are still the old ones.
      expect(await fingerprint(machine.manifests)).toBe(manifestsBefore);
      expect(await clusterConfiguration(cp)).toMatch(
        new RegExp(`^kubernetesVersion: v${from.replace(/\./g, "\\.")}$`, "m"),
      );
    }, 300_000);

    test("a worker's drain that cannot finish stops its upgrade with kubectl's reason and the pods in the way: a Pod no controller manages, then a PodDisruptionBudget that allows no disruption", async () => {
      const cp = controlPlane();
      const worker = cp.stack.workers[0].name;
      // A 10 s drain (the key's minimum is 60 s; a render can be given less) so the PDB case is short.
      const config = { ...testStackConfig(cp.stack.name, upgrade.config.kubernetesVersion), drainTimeoutSeconds: 10 };
      const short = renderTestStack(path.join(cp.dir, "render-drain"), cp.ca, config, cp.stack.name, {
        kubernetesVersion: from,
      });
      const step = short.step("upgrade-drain", worker);
      expect(step.node).not.toBe(worker); // drained from its control plane
      const apply = async (object: Record<string, unknown>) =>
        expect((await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(object) })).code).toBe(0);
      const labels = { app: "shop" };
      try {
        await apply({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "standalone", namespace: "default" },
          spec: { nodeName: worker, containers: [{ name: "app", image: "registry.k8s.io/pause:3.10.2" }] },
        });
        await apply({
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          metadata: { name: "shop", namespace: "default" },
          spec: {
            replicas: 1,
            selector: { matchLabels: labels },
            template: {
              metadata: { labels },
              spec: {
                nodeSelector: { "kubernetes.io/hostname": worker },
                containers: [{ name: "app", image: "registry.k8s.io/pause:3.10.2" }],
              },
            },
          },
        });
        await apply({
          apiVersion: "policy/v1",
          kind: "PodDisruptionBudget",
          metadata: { name: "shop", namespace: "default" },
          spec: { minAvailable: 1, selector: { matchLabels: labels } },
        });
        // The disruption controller counts the running replica: no disruption allowed.
        await waitFor(
          "the PodDisruptionBudget to count its one healthy pod",
          async () => {
            const pdb = await cp.kubectl(["get", "pdb", "shop", "-o", "jsonpath={.status.currentHealthy}"]);
            return pdb.stdout === "1" || pdb.output;
          },
          60_000,
        );
        const replica = (
          await cp.kubectl(["get", "pods", "-l", "app=shop", "-o", "jsonpath={.items[0].metadata.name}"])
        ).stdout;
        expect(replica).toMatch(/^shop-/);

        // A Pod without a controller: kubectl drain refuses at once (it would not come back).
        const unmanaged = await runStep(cp, step, { stack: short });
        expect(unmanaged.leakedSecret).toBe(false);
        expect(unmanaged.code).not.toBe(0);
        expect(unmanaged.output).toContain("cannot delete Pods that declare no controller");
        expect(unmanaged.output).toMatch(
          new RegExp(`drain of ${worker} failed \\(at most 10s\\): error: .*declare no controller`),
        );
        // The pods in the way, not the DaemonSet's (kube-proxy) that a drain leaves.
        expect(unmanaged.output).toContain(`pods still on it: default/${replica} default/standalone;`);
        expect(unmanaged.output).toContain(`${worker} stays cordoned`);
        expect((await cp.kubectl(["get", "node", worker, "-o", "jsonpath={.spec.unschedulable}"])).stdout).toBe("true");

        // Without it, the budget blocks the eviction until the drain's timeout.
        expect((await cp.kubectl(["delete", "pod", "standalone", "--grace-period=0", "--force"])).code).toBe(0);
        const budget = await runStep(cp, step, { stack: short });
        expect(budget.code).not.toBe(0);
        expect(budget.output).toContain("Cannot evict pod as it would violate the pod's disruption budget.");
        expect(budget.output).toMatch(
          new RegExp(
            `drain of ${worker} failed \\(at most 10s\\): error when evicting .*global timeout reached: 10s ` +
              `\\(the API server: Cannot evict pod as it would violate the pod's disruption budget\\.\\)`,
          ),
        );
        expect(budget.output).toContain(`pods still on it: default/${replica};`);
      } finally {
        await cp.kubectl(["delete", "pdb", "shop", "--ignore-not-found"]);
        await cp.kubectl(["delete", "replicaset", "shop", "--ignore-not-found"]);
        await cp.kubectl(["delete", "pod", "standalone", "--ignore-not-found", "--grace-period=0", "--force"]);
        await cp.kubectl(["uncordon", worker]);
      }
    }, 300_000);
  });
});
