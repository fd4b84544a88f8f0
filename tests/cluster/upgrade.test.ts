// The real-cluster tier's upgrade (npm run test:cluster-upgrade): the dev stack deployed at the
// default minor, with kubeadm's imageRepository on the lab's mirror, then upgraded one minor by
// `pulumi up` with the next kubernetesVersion, as the engine runs it: kubeadm's own upgrade on real
// machines, new packages from the next minor's repositories, the kubelets replaced.

import { SUPPORTED_KUBERNETES, DEFAULT_KUBERNETES_MINOR } from "../../render/versions";
import { LabCluster } from "./lab/cluster";
import { Checks } from "./lab/checks";
import { DeployResult } from "./lab/engine";
import { MIRROR_IP } from "./lab/lab";

const artifacts = process.env.HA_K8S_LAB_ARTIFACTS;
const lines: string[] = [];
const log = (line: string) => lines.push(`${new Date().toISOString().slice(11, 19)} ${line}`);

function expectOk(result: DeployResult): void {
  if (!result.ok) throw new Error(`the deployment failed: ${result.failure}\nnot run: ${result.notRun.join(", ")}`);
}

const minors = Object.keys(SUPPORTED_KUBERNETES);
const from = SUPPORTED_KUBERNETES[DEFAULT_KUBERNETES_MINOR];
const nextMinor = minors[minors.indexOf(DEFAULT_KUBERNETES_MINOR) + 1];
const to = SUPPORTED_KUBERNETES[nextMinor];
const repository = `${MIRROR_IP}/k8s`;

const describeUpgrade = artifacts && nextMinor ? describe : describe.skip;
if (!artifacts) console.warn("SKIPPING the real-cluster upgrade: run it with npm run test:cluster-upgrade");

describeUpgrade(`a real upgrade, ${from.patch} -> ${to?.patch}`, () => {
  let cluster: LabCluster;
  let checks: Checks;
  const controlPlanes = () => cluster.stack.plan.nodes.filter((n) => n.role === "control-plane");
  const kubeNodes = () => cluster.stack.plan.nodes.filter((n) => n.role !== "loadbalancer");
  const images = async (machine: string) => (await checks.onMachine(machine, "crictl images -o json")) as string;

  beforeAll(async () => {
    cluster = await LabCluster.create({ artifacts: artifacts!, overrides: { imageRepository: repository }, log });
    checks = new Checks(cluster);
  }, 120_000);

  afterAll(async () => expect(cluster ? await cluster.end() : []).toEqual([]), 120_000);

  afterEach(() => {
    if (lines.length > 0) console.log(lines.splice(0).join("\n"));
  });

  test(
    `${from.patch} with imageRepository ${repository}: kubeadm's images, CRI-O's pause image and the pre-pull from it`,
    async () => {
      expectOk(await cluster.up());
      for (const node of controlPlanes()) {
        const pulled = await images(node.name);
        for (const name of ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"]) {
          expect(pulled).toContain(`${repository}/${name}:v${from.patch}`);
        }
        expect(pulled).toContain(`${repository}/etcd:${from.etcdVersion}-0`);
        // CoreDNS directly below a custom repository (kubeadm's images.go GetDNSImage).
        expect(pulled).toMatch(new RegExp(`${repository.replace(/\./g, "\\.")}/coredns:v`));
      }
      for (const node of kubeNodes()) {
        expect(await images(node.name)).toContain(`${repository}/${from.pauseImage.split("/").pop()}`);
      }
      // Nothing asked registry.k8s.io's names on the mirror.
      expect(checks.mirrorRequests().join("\n")).not.toMatch(/ns=registry\.k8s\.io/);
    },
    15 * 60_000,
  );

  test(
    `pulumi up with kubernetesVersion ${nextMinor}: upgrade apply on the first control plane, upgrade node on the others and the workers, every kubelet at v${to?.patch}`,
    async () => {
      cluster.reconfigure({ kubernetesVersion: nextMinor });
      expect(cluster.stack.plan.upgrade).toMatchObject({ from: from.patch, to: to.patch });
      const result = await cluster.up();
      expectOk(result);
      const upgrades = result.records.filter((r) => r.kind === "upgrade").map((r) => r.node);
      const cps = controlPlanes().map((n) => n.name);
      // Control planes one at a time, the first (kubeadm upgrade apply) first, then the workers.
      expect(upgrades.slice(0, cps.length)).toEqual(cps);
      expect(upgrades.slice(cps.length).sort()).toEqual(
        kubeNodes()
          .filter((n) => n.role === "worker")
          .map((n) => n.name)
          .sort(),
      );
      expect(result.records.find((r) => r.kind === "upgrade-verify")?.ok).toBe(true);

      const nodes = await checks.nodes();
      expect(nodes.map((n) => [n.name, n.ready, n.kubeletVersion]).sort()).toEqual(
        kubeNodes()
          .map((n) => [n.name, true, `v${to.patch}`])
          .sort(),
      );
      for (const cp of controlPlanes()) {
        expect(await checks.onMachine(cp.name, `curl -ks https://${cp.internalIp}:6443/version`)).toContain(
          `"gitVersion": "v${to.patch}"`,
        );
        expect(await checks.onMachine(cp.name, "grep -h 'image:' /etc/kubernetes/manifests/etcd.yaml")).toContain(
          `${repository}/etcd:${to.etcdVersion}-0`,
        );
        expect((await checks.onMachine(cp.name, "dpkg-query -W kubelet kubeadm kubectl")).trim().split("\n")).toEqual(
          ["kubeadm", "kubectl", "kubelet"].map((p) => `${p}\t${to.debVersion}`),
        );
      }
      // The addons: kube-proxy and CoreDNS at the new release's images.
      const proxy = await checks.kubectl(["-n", "kube-system", "get", "ds/kube-proxy", "-o", "jsonpath={..image}"]);
      expect(proxy).toBe(`${repository}/kube-proxy:v${to.patch}`);
      const dns = await checks.kubectl(["-n", "kube-system", "get", "deploy/coredns", "-o", "jsonpath={..image}"]);
      const listed = await checks.onMachine(
        cps[0],
        `kubeadm config images list --kubernetes-version v${to.patch} --image-repository ${repository} | grep /coredns:`,
      );
      expect(dns).toBe(listed.trim());
    },
    40 * 60_000,
  );
});
