// npm run test:artifacts: renders every stack in the repository and hands each artifact to the
// real program that consumes it (checks.ts), then proves the kubeadm check can fail on a fixture
// with a misspelled field. Prints one table (artifact, tool, version, result); exits 1 on any failure.

import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderAll } from "../../render/artifacts";
import { formatIssues, resolveConfig } from "../../render/config";
import { listStacks, readProjectFile, readStackFile } from "../../render/project";
import { readScriptSources } from "../../render/scripts";
import { DEFAULT_KUBERNETES_MINOR, SUPPORTED_KUBERNETES, kubernetesRelease } from "../../render/versions";
import { renderBackupService } from "../../render/backup";
import { CheckResult, checkKubeadmConfig, checkRendered, pullSources } from "./checks";
import { checkScheduleValidator, verifyUnits } from "./systemd";
import { TEST_OPENPGP_KEY } from "../unit/fixtures";

/** Every mirror key set; an IPv4 image repository with a port and path, the form most easily refused. */
const MIRROR_VALUES = {
  kubernetesPackageMirror: "https://apt.example.com/pkgs-k8s/",
  kubernetesPackageKey: TEST_OPENPGP_KEY,
  crioPackageMirror: "http://192.0.2.20:8080/opensuse",
  crioPackageKey: TEST_OPENPGP_KEY,
  imageRepository: "192.0.2.10:5000/k8s",
  calicoManifestMirror: "https://files.example.com/calico",
  registryMirror: "mirror.example.com:5000/cache",
};

interface Row extends CheckResult {
  readonly stack: string;
}

function table(rows: readonly Row[]): string {
  const cells = [
    ["stack", "artifact", "tool", "version", "result"],
    ...rows.map((r) => [r.stack, r.artifact, r.tool, r.version, r.skipped ? "SKIPPED" : r.ok ? "ok" : "FAIL"]),
  ];
  const widths = cells[0].map((_, i) => Math.max(...cells.map((c) => c[i].length)));
  return cells.map((c) => c.map((v, i) => v.padEnd(widths[i])).join("  ")).join("\n");
}

function main(): number {
  const defaults = readProjectFile().defaults;
  const sources = readScriptSources();
  const rows: Row[] = [];
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ha-k8s-artifacts-"));
  try {
    // Every stack as it is, then the first stack at every other supported minor, so that a
    // version bump in render/versions.ts is checked against that version's own kubeadm.
    const stacks = listStacks();
    // And the first stack with every mirror key set (restricted egress), checked whole: kubeadm with
    // its image repository, CRI-O's pause image from it, the staged repository keys, the bundles.
    const variants = [
      ...stacks.map((stack) => ({ label: stack, values: readStackFile(stack) })),
      { label: `${stacks[0]}+mirrors`, values: { ...readStackFile(stacks[0]), ...MIRROR_VALUES } },
      ...Object.keys(SUPPORTED_KUBERNETES)
        .filter((minor) => minor !== resolveConfig(readStackFile(stacks[0]), defaults).config?.kubernetesVersion)
        .map((minor) => ({
          label: `${stacks[0]}@${minor}`,
          values: { ...readStackFile(stacks[0]), kubernetesVersion: minor },
        })),
    ];
    let mirroredInit: { file: string; artifact: string } | undefined;
    for (const { label, values } of variants) {
      const resolved = resolveConfig(values, defaults);
      if (!resolved.config) {
        console.error(formatIssues(`stack ${label} does not validate:`, resolved.errors));
        return 1;
      }
      const { files } = renderAll(resolved.config, sources);
      const dir = path.join(root, label);
      for (const file of files) {
        fs.mkdirSync(path.dirname(path.join(dir, file.path)), { recursive: true });
        fs.writeFileSync(path.join(dir, file.path), file.content, { mode: file.mode });
      }
      const versionOnly = label.includes("@");
      const checked = versionOnly ? files.filter((f) => f.kind === "kubeadm-config") : files;
      rows.push(...checkRendered(checked, dir, resolved.config).map((r) => ({ ...r, stack: label })));
      if (resolved.config.imageRepository) {
        const init = files.find((f) => f.path.endsWith("/kubeadm-init.yaml"))!;
        mirroredInit = { file: path.join(dir, init.path), artifact: `${label}/${init.path}` };
      }
    }

    // The images check must be able to fail: the init configuration with imageRepository, held
    // against kubeadm's default repository, must not pass.
    if (mirroredInit) {
      const patch = kubernetesRelease(DEFAULT_KUBERNETES_MINOR).patch;
      // [validate, images list], or one row when kubeadm is missing.
      const checks = checkKubeadmConfig(mirroredInit.file, mirroredInit.artifact, patch);
      const images = checks[checks.length - 1];
      const refused = !images.ok && /192\.0\.2\.10:5000\/k8s\/kube-apiserver:v/.test(images.detail);
      rows.push({
        ...images,
        stack: "(fixture)",
        tool: `${images.tool} against registry.k8s.io (must reject)`,
        ok: images.skipped ? images.ok : refused,
        detail: refused ? "" : `the images check passed a configuration with another repository:\n${images.detail}`,
      });
    }

    // The check must be able to fail: a misspelled field has to be rejected with kubeadm's own error.
    const patch = kubernetesRelease(DEFAULT_KUBERNETES_MINOR).patch;
    const fixtures = path.join(__dirname, "fixtures");
    rows.push(
      ...checkKubeadmConfig(path.join(fixtures, "kubeadm-valid.yaml"), "fixtures/kubeadm-valid.yaml", patch).map(
        (r) => ({
          ...r,
          stack: "(fixture)",
        }),
      ),
    );
    const [broken] = checkKubeadmConfig(
      path.join(fixtures, "kubeadm-misspelled.yaml"),
      "fixtures/kubeadm-misspelled.yaml",
      patch,
    );
    const rejectedAsExpected =
      !broken.ok && /strict decoding error: unknown field "controlPlaneEndpont"/.test(broken.detail);
    rows.push({
      ...broken,
      stack: "(fixture)",
      tool: `${broken.tool} (must reject)`,
      ok: broken.skipped ? broken.ok : rejectedAsExpected,
      detail: rejectedAsExpected ? "" : `kubeadm did not reject the misspelled field as expected:\n${broken.detail}`,
    });
    if (rejectedAsExpected)
      console.log(`kubeadm rejects the broken fixture with its own error:\n  ${broken.detail.split("\n")[0]}\n`);

    // The same for systemd: a misspelled timer key must be reported by systemd-analyze verify.
    rows.push({ ...checkScheduleValidator(), stack: "(validator)" });
    const timer = fs.readFileSync(path.join(fixtures, "systemd-misspelled.timer"), "utf8");
    const units = [
      { name: "ha-k8s-etcd-backup.timer", content: timer },
      { name: "ha-k8s-etcd-backup.service", content: renderBackupService() },
    ];
    const verified = verifyUnits(units);
    const systemdRejects = !verified.ok && /Unknown key '?OnCalender'?/.test(verified.detail);
    rows.push({
      artifact: "fixtures/systemd-misspelled.timer",
      tool: "systemd-analyze verify (must reject)",
      version: "",
      ok: systemdRejects || (!process.env.CI && /no system units|ENOENT/.test(verified.detail)),
      skipped: !systemdRejects && !process.env.CI && /no system units|ENOENT/.test(verified.detail),
      detail: systemdRejects
        ? ""
        : `systemd-analyze did not reject the misspelled key as expected:\n${verified.detail}`,
      stack: "(fixture)",
    });
    if (systemdRejects)
      console.log(`systemd rejects the broken timer with its own words:\n  ${verified.detail.split("\n")[0]}\n`);

    // The registries check must be able to fail too: a mirror written with a scheme is refused by
    // the library CRI-O reads the drop-in with (config validation refuses it before that).
    const schemed = pullSources(path.join(fixtures, "registries-scheme.conf"), "busybox");
    const refused =
      !(schemed instanceof Error) && schemed.status !== 0 && /URI schemes are not supported/.test(schemed.output);
    rows.push({
      stack: "(fixture)",
      artifact: "fixtures/registries-scheme.conf",
      tool: "go.podman.io/image (must reject)",
      version: "v5.42.1",
      ok: refused,
      detail: refused
        ? ""
        : `the mirror with a scheme was not refused: ${schemed instanceof Error ? schemed.message : schemed.output}`,
    });
    if (refused && !(schemed instanceof Error))
      console.log(`go.podman.io/image refuses the broken drop-in with its own error:\n  ${schemed.output}\n`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }

  console.log(table(rows));
  const failed = rows.filter((r) => !r.ok);
  const skipped = rows.filter((r) => r.skipped);
  for (const r of failed) console.error(`\nFAIL ${r.stack} ${r.artifact} (${r.tool}):\n${r.detail}`);
  for (const r of skipped) console.warn(`SKIPPED ${r.stack} ${r.artifact}: ${r.detail}`);
  console.log(
    `\n${rows.length} checks: ${rows.length - failed.length - skipped.length} ok, ${failed.length} failed, ${skipped.length} skipped`,
  );
  return failed.length > 0 ? 1 : 0;
}

process.exit(main());
