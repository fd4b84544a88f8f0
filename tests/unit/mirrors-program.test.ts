// imageRepository under the real program (index.ts) and Pulumi mocks: refused on a running cluster.

import { failedRun, runProgram } from "./harness";
import { TEST_OPENPGP_KEY } from "./fixtures";

const base = { "gcp:region": "europe-west1", clusterName: "c", workerCount: 2, controlPlaneCount: 3 };
const MIRRORS = {
  kubernetesPackageMirror: "https://apt.example.com/pkgs-k8s",
  kubernetesPackageKey: TEST_OPENPGP_KEY,
  crioPackageMirror: "https://apt.example.com/opensuse",
  crioPackageKey: TEST_OPENPGP_KEY,
  imageRepository: "registry.example.com/k8s",
  calicoManifestMirror: "https://files.example.com/calico",
  registryMirror: "mirror.example.com",
};
/** The outputs a 1.36 deployment left (immutableSettings as the release before this key had them). */
const deployed = (settings: Record<string, string> = {}) => ({
  previousOutputs: {
    kubernetesVersion: "1.36.3",
    createdWithKubernetes: "1.36.3",
    controlPlaneCount: 3,
    nodes: ["c-cp-1", "c-cp-2", "c-cp-3", "c-worker-1", "c-worker-2"].map((name) => ({
      name,
      role: name.includes("cp") ? "control-plane" : "worker",
    })),
    immutableSettings: {
      clusterName: "c",
      region: "europe-west1",
      subnetCidr: "10.10.0.0/22",
      podCidr: "10.244.0.0/16",
      serviceCidr: "10.96.0.0/12",
      ...settings,
    },
  },
});

describe("imageRepository on a running cluster", () => {
  test.each<[string, Record<string, string>, string, string]>([
    ["set on a cluster built with registry.k8s.io", {}, "registry.example.com/k8s", '"" \\(registry.k8s.io\\)'],
    [
      "changed",
      { imageRepository: "registry.example.com/k8s" },
      "registry.example.com/other",
      '"registry.example.com/k8s"',
    ],
    ["unset", { imageRepository: "registry.example.com/k8s" }, "", '"registry.example.com/k8s"'],
  ])("%s: refused before any resource, saying why and what to keep", async (_name, settings, next, kept) => {
    const failure = await failedRun({ ...base, imageRepository: next }, deployed(settings));
    expect(failure.message).toMatch(
      new RegExp(
        `ha-k8s:imageRepository: .* is refused: kubeadm init wrote it into the cluster's kubeadm-config ConfigMap, ` +
          `which every join and upgrade reads, and init never runs again; .* Keep ${kept}`,
      ),
    );
    expect(failure.registered).toEqual([]);
  });

  test("a cluster deployed before the key existed (no imageRepository in its outputs) counts as registry.k8s.io", async () => {
    const failure = await failedRun({ ...base, imageRepository: "registry.example.com/k8s" }, deployed());
    expect(failure.message).toMatch(
      /ha-k8s:imageRepository: "" \(registry.k8s.io\) -> "registry.example.com\/k8s" is refused/,
    );
    // Left empty, or named as kubeadm's default, it is what the cluster runs: nothing to refuse.
    await expect(runProgram({ ...base, imageRepository: "registry.k8s.io" }, deployed())).resolves.toBeDefined();
    await expect(runProgram(base, deployed())).resolves.toBeDefined();
  });

  test("the package and Calico mirrors, the keys and registryMirror may change on a running cluster", async () => {
    const { imageRepository: _kept, ...changeable } = MIRRORS; // eslint-disable-line @typescript-eslint/no-unused-vars -- the rest may change
    await expect(runProgram({ ...base, ...changeable }, deployed())).resolves.toBeDefined();
  });
});
