// The mirror keys (kubernetesPackageMirror/Key, crioPackageMirror/Key, imageRepository,
// calicoManifestMirror, etcdReleaseMirror, registryMirror) in what the machines get: present exactly when configured,
// and today's output when they are empty.

import { parseAllDocuments } from "yaml";
import { renderAll } from "../../render/artifacts";
import { ClusterConfig, RawConfig, resolveConfig } from "../../render/config";
import { Plan, buildPlan } from "../../render/plan";
import { readProjectFile } from "../../render/project";
import { readScriptSources } from "../../render/scripts";
import { RENDER_PLACEHOLDERS } from "../../render/secrets";
import { StepCommand, renderStepCommand } from "../../render/steps";
import { SUPPORTED_KUBERNETES } from "../../render/versions";
import { TEST_OPENPGP_KEY } from "./fixtures";

const sources = readScriptSources();
const configOf = (values: RawConfig): ClusterConfig => {
  const resolved = resolveConfig(values, readProjectFile().defaults);
  if (!resolved.config) throw new Error(JSON.stringify(resolved.errors));
  return resolved.config;
};
const stepOf = (config: ClusterConfig, plan: Plan, id: string): StepCommand => {
  const step = plan.steps.find((s) => s.id === id);
  if (!step) throw new Error(`no step ${id}`);
  return renderStepCommand(
    config,
    plan,
    step,
    step.kind === "init" || step.kind === "credentials" ? RENDER_PLACEHOLDERS : undefined,
    sources,
  );
};
/** The value of VAR='...' in a bundle's env heredoc (values here hold no quote). */
const envOf = (bundle: string, name: string): string | undefined =>
  new RegExp(`^${name}='([^']*)'$`, "m").exec(bundle)?.[1];
const fileOf = (command: StepCommand, name: string) => command.files.find((f) => f.name === name);
const clusterConfigurationOf = (text: string) =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Record<string, unknown>)
    .find((d) => d.kind === "ClusterConfiguration")!;

const MIRRORS = {
  kubernetesPackageMirror: "https://apt.example.com/pkgs-k8s/",
  kubernetesPackageKey: TEST_OPENPGP_KEY,
  crioPackageMirror: "http://192.0.2.20:8080/opensuse",
  crioPackageKey: TEST_OPENPGP_KEY.replace(/\n/g, "\r\n"),
  imageRepository: "192.0.2.10:5000/k8s",
  calicoManifestMirror: "https://files.example.com/calico",
  etcdReleaseMirror: "https://files.example.com/etcd/",
  registryMirror: "mirror.example.com:5000/cache",
};
const minors = Object.keys(SUPPORTED_KUBERNETES);
const pauseTag = (minor: string) => SUPPORTED_KUBERNETES[minor].pauseImage.split(":").pop();

describe("all empty: today's output", () => {
  const config = configOf({});
  const plan = buildPlan(config);
  const prepare = stepOf(config, plan, "ha-k8s-cp-1/prepare");

  test("the empty keys render exactly what leaving them out renders", () => {
    const empty = configOf(Object.fromEntries(Object.keys(MIRRORS).map((key) => [key, ""])));
    expect(renderAll(empty, sources).files).toEqual(renderAll(config, sources).files);
  });

  test("upstream repositories, downloaded keys, registry.k8s.io, GitHub", () => {
    expect(envOf(prepare.bundle!, "K8S_RELEASES")!.split("\n")).toEqual(
      minors.map(
        (minor) =>
          `${minor} ${SUPPORTED_KUBERNETES[minor].patch} ${SUPPORTED_KUBERNETES[minor].debVersion} ` +
          `https://pkgs.k8s.io/core:/stable:/v${minor}/deb/ ` +
          `https://download.opensuse.org/repositories/isv:/cri-o:/stable:/v${minor}/deb/`,
      ),
    );
    expect(prepare.files.map((f) => f.name)).toEqual(minors.map((minor) => `crio-${minor}.conf`));
    for (const minor of minors) {
      expect(fileOf(prepare, `crio-${minor}.conf`)!.content).toContain(
        `pause_image = "registry.k8s.io/pause:${pauseTag(minor)}"`,
      );
    }
    expect(envOf(prepare.bundle!, "IMAGE_REPOSITORY")).toBeUndefined();
    const init = stepOf(config, plan, "ha-k8s-cp-1/init");
    expect(clusterConfigurationOf(fileOf(init, "kubeadm-init.yaml")!.content)).not.toHaveProperty("imageRepository");
    expect(envOf(stepOf(config, plan, "ha-k8s-cp-1/cni").bundle!, "CALICO_MANIFEST_URLS")).toBe(
      "https://raw.githubusercontent.com/projectcalico/calico/v3.33.1/manifests/operator-crds.yaml " +
        "https://raw.githubusercontent.com/projectcalico/calico/v3.33.1/manifests/tigera-operator.yaml",
    );
    expect(envOf(stepOf(config, plan, "ha-k8s-cp-2/backup").bundle!, "ETCD_RELEASE_URL")).toBe(
      `https://github.com/etcd-io/etcd/releases/download/v${plan.backup.etcdVersion}`,
    );
  });

  test("an upgrade: the target minor's upstream repositories, no staged key", () => {
    const next = configOf({ kubernetesVersion: "1.37" });
    const upgrade = stepOf(next, buildPlan(next, { kubernetesVersion: "1.36.3" }), "ha-k8s-cp-1/upgrade");
    expect(envOf(upgrade.bundle!, "KUBERNETES_APT_REPO")).toBe("https://pkgs.k8s.io/core:/stable:/v1.37/deb/");
    expect(envOf(upgrade.bundle!, "CRIO_APT_REPO")).toBe(
      "https://download.opensuse.org/repositories/isv:/cri-o:/stable:/v1.37/deb/",
    );
    expect(upgrade.files.map((f) => f.name)).toEqual(["crio.conf"]);
    expect(upgrade.files[0].content).toContain(`pause_image = "registry.k8s.io/pause:${pauseTag("1.37")}"`);
  });
});

describe("with every mirror key set", () => {
  const config = configOf(MIRRORS);
  const plan = buildPlan(config);
  const prepare = stepOf(config, plan, "ha-k8s-cp-1/prepare");

  test("prepare: each minor's repositories under the mirrors, in the table prepare-node.sh reads", () => {
    expect(envOf(prepare.bundle!, "K8S_RELEASES")!.split("\n")).toEqual(
      minors.map(
        (minor) =>
          `${minor} ${SUPPORTED_KUBERNETES[minor].patch} ${SUPPORTED_KUBERNETES[minor].debVersion} ` +
          `https://apt.example.com/pkgs-k8s/core:/stable:/v${minor}/deb/ ` +
          `http://192.0.2.20:8080/opensuse/isv:/cri-o:/stable:/v${minor}/deb/`,
      ),
    );
  });

  test("prepare and upgrade stage both repository keys, public (0644, not secret), as GnuPG writes them", () => {
    const next = configOf({ ...MIRRORS, kubernetesVersion: "1.37" });
    const upgrade = stepOf(next, buildPlan(next, { kubernetesVersion: "1.36.3" }), "ha-k8s-worker-1/upgrade");
    for (const command of [prepare, upgrade]) {
      for (const name of ["kubernetes-release.key", "cri-o-release.key"]) {
        expect(fileOf(command, name)).toEqual({ name, content: TEST_OPENPGP_KEY, mode: 0o644, kind: "other" });
        expect(command.bundle).toContain(`cat > "$stage/${name}" <<'HA_K8S_EOF'\n${TEST_OPENPGP_KEY}HA_K8S_EOF\n`);
      }
      expect(command.secret).toBe(false);
    }
    expect(envOf(upgrade.bundle!, "KUBERNETES_APT_REPO")).toBe(
      "https://apt.example.com/pkgs-k8s/core:/stable:/v1.37/deb/",
    );
    expect(envOf(upgrade.bundle!, "CRIO_APT_REPO")).toBe(
      "http://192.0.2.20:8080/opensuse/isv:/cri-o:/stable:/v1.37/deb/",
    );
    expect(fileOf(upgrade, "crio.conf")!.content).toContain(
      `pause_image = "192.0.2.10:5000/k8s/pause:${pauseTag("1.37")}"`,
    );
  });

  test("one key alone is staged alone: pinning the upstream key needs no mirror", () => {
    const pinned = configOf({ crioPackageKey: TEST_OPENPGP_KEY });
    const command = stepOf(pinned, buildPlan(pinned), "ha-k8s-worker-1/prepare");
    expect(command.files.map((f) => f.name)).toEqual([...minors.map((m) => `crio-${m}.conf`), "cri-o-release.key"]);
    expect(envOf(command.bundle!, "K8S_RELEASES")).toContain("https://download.opensuse.org/repositories/isv:/cri-o:");
  });

  test("imageRepository: kubeadm's ClusterConfiguration (init and upload-certs), CRI-O's pause image, the pre-pull", () => {
    for (const [id, file] of [
      ["ha-k8s-cp-1/init", "kubeadm-init.yaml"],
      ["ha-k8s-cp-2/credentials", "kubeadm-upload-certs.yaml"],
    ]) {
      const cluster = clusterConfigurationOf(fileOf(stepOf(config, plan, id), file)!.content);
      expect(cluster.imageRepository).toBe("192.0.2.10:5000/k8s");
    }
    for (const minor of minors) {
      expect(fileOf(prepare, `crio-${minor}.conf`)!.content).toContain(
        `pause_image = "192.0.2.10:5000/k8s/pause:${pauseTag(minor)}"`,
      );
    }
    expect(envOf(prepare.bundle!, "IMAGE_REPOSITORY")).toBe("192.0.2.10:5000/k8s");
    // Workers pull no control-plane images, but their CRI-O needs the same pause image.
    const worker = stepOf(config, plan, "ha-k8s-worker-1/prepare");
    expect(fileOf(worker, "crio-1.36.conf")!.content).toContain('pause_image = "192.0.2.10:5000/k8s/pause:3.10.2"');
  });

  test("Calico's manifests from the mirror, at the pinned release", () => {
    expect(envOf(stepOf(config, plan, "ha-k8s-cp-1/cni").bundle!, "CALICO_MANIFEST_URLS")).toBe(
      "https://files.example.com/calico/v3.33.1/manifests/operator-crds.yaml " +
        "https://files.example.com/calico/v3.33.1/manifests/tigera-operator.yaml",
    );
  });

  test("etcd's release (the backups' etcdutl) from the mirror, on every control plane", () => {
    for (const cp of plan.nodes.filter((n) => n.role === "control-plane")) {
      expect(envOf(stepOf(config, plan, `${cp.name}/backup`).bundle!, "ETCD_RELEASE_URL")).toBe(
        `https://files.example.com/etcd/v${plan.backup.etcdVersion}`,
      );
    }
  });

  test("registryMirror: the three-registry drop-in on every node, nowhere without it", () => {
    for (const node of plan.nodes.filter((n) => n.role !== "loadbalancer")) {
      const dropIn = fileOf(stepOf(config, plan, `${node.name}/prepare`), "registries-mirror.conf")!;
      expect(dropIn.kind).toBe("registries-config");
      expect(dropIn.content.match(/^prefix = "(.*)"$/gm)).toEqual([
        'prefix = "docker.io"',
        'prefix = "registry.k8s.io"',
        'prefix = "quay.io"',
      ]);
      expect(dropIn.content.match(/^location = "mirror.example.com:5000\/cache"$/gm)).toHaveLength(3);
    }
    const plain = configOf({});
    expect(renderAll(plain, sources).files.filter((f) => f.kind === "registries-config")).toEqual([]);
  });
});
