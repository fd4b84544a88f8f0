// The mirror keys through the real program (index.ts) under Pulumi mocks: what the commands send to
// the machines, and imageRepository refused on a running cluster.

import { ProgramRun, failedRun, runProgram } from "./harness";
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
const stdinOf = (run: ProgramRun, name: string) => run.byName(name).inputs.stdin as string;
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

let mirrored: ProgramRun;
beforeAll(async () => {
  mirrored = await runProgram({ ...base, ...MIRRORS });
});

test("prepare: the mirrored repositories, both keys, the image repository and the registries drop-in", () => {
  for (const name of ["c-cp-1-prepare", "c-worker-1-prepare"]) {
    const stdin = stdinOf(mirrored, name);
    expect(stdin).toContain("1.36 1.36.3 1.36.3-1.1 https://apt.example.com/pkgs-k8s/core:/stable:/v1.36/deb/ ");
    expect(stdin).toContain("https://apt.example.com/opensuse/isv:/cri-o:/stable:/v1.36/deb/");
    expect(/^K8S_RELEASES='([^']*)'$/m.exec(stdin)![1]).not.toMatch(/pkgs\.k8s\.io|download\.opensuse\.org/);
    expect(stdin).toContain(`cat > "$stage/kubernetes-release.key" <<'HA_K8S_EOF'\n${TEST_OPENPGP_KEY}HA_K8S_EOF`);
    expect(stdin).toContain(`cat > "$stage/cri-o-release.key" <<'HA_K8S_EOF'\n${TEST_OPENPGP_KEY}HA_K8S_EOF`);
    expect(stdin).toContain("IMAGE_REPOSITORY='registry.example.com/k8s'");
    expect(stdin).toContain('pause_image = "registry.example.com/k8s/pause:3.10.2"');
    expect(stdin).toContain('prefix = "quay.io"');
    // Public keys: the step stays plain, its logs visible.
    expect(mirrored.byName(name).secretInputs).not.toContain("stdin");
  }
});

test("init: kubeadm's ClusterConfiguration names the image repository", () => {
  expect(stdinOf(mirrored, "c-cp-1-init")).toMatch(/^imageRepository: registry.example.com\/k8s$/m);
});

test("cni: Calico's manifests from the mirror", () => {
  expect(stdinOf(mirrored, "c-cp-1-cni")).toContain(
    "CALICO_MANIFEST_URLS='https://files.example.com/calico/v3.33.1/manifests/operator-crds.yaml " +
      "https://files.example.com/calico/v3.33.1/manifests/tigera-operator.yaml'",
  );
});

test("upgrade: the next minor's mirrored repositories, both keys and the pause image from the image repository", async () => {
  const upgrading = await runProgram(
    { ...base, ...MIRRORS, kubernetesVersion: "1.37" },
    deployed({ imageRepository: "registry.example.com/k8s" }),
  );
  for (const name of ["c-cp-1-upgrade", "c-worker-2-upgrade"]) {
    const stdin = stdinOf(upgrading, name);
    expect(stdin).toContain("KUBERNETES_APT_REPO='https://apt.example.com/pkgs-k8s/core:/stable:/v1.37/deb/'");
    expect(stdin).toContain("CRIO_APT_REPO='https://apt.example.com/opensuse/isv:/cri-o:/stable:/v1.37/deb/'");
    expect(stdin).toContain(`cat > "$stage/kubernetes-release.key" <<'HA_K8S_EOF'\n${TEST_OPENPGP_KEY}HA_K8S_EOF`);
    expect(stdin).toContain(`cat > "$stage/cri-o-release.key" <<'HA_K8S_EOF'\n${TEST_OPENPGP_KEY}HA_K8S_EOF`);
    expect(stdin).toContain('pause_image = "registry.example.com/k8s/pause:3.10.2"');
  }
});

test("the deployment records imageRepository with the settings the cluster is built on", () => {
  expect(mirrored.outputs.immutableSettings).toMatchObject({ imageRepository: "registry.example.com/k8s" });
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
