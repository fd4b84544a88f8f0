// Checks rendered artifacts with the real programs that consume them: kubeadm (built from the
// Kubernetes Go modules by tools/kubeadm.sh), HAProxy, bash and shellcheck, plus YAML/JSON parsing
// and consistency with the configuration. Used by run.ts for every stack and for the fixtures.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse as parseToml } from "smol-toml";
import { parseAllDocuments } from "yaml";
import { RenderedFile } from "../../render/artifacts";
import { CALICO_VERSION } from "../../render/calico";
import { ClusterConfig } from "../../render/config";
import { PROJECT_DIR } from "../../render/project";
import { MIRRORED_REGISTRIES } from "../../render/crio";
import { UPSTREAM } from "../../render/mirrors";
import { DEFAULT_KUBERNETES_MINOR, kubernetesRelease, minorOfVersion, pauseImageFor } from "../../render/versions";
import { checkEtcdVersion, checkSystemdUnits } from "./systemd";

export interface CheckResult {
  readonly artifact: string;
  readonly tool: string;
  readonly version: string;
  readonly ok: boolean;
  /** The tool's own words when it failed (or why the check was skipped). */
  readonly detail: string;
  readonly skipped?: boolean;
}

export interface Run {
  status: number | null;
  output: string;
}

export function run(command: string, args: readonly string[], options: { cwd?: string } = {}): Run {
  const result = spawnSync(command, args, { encoding: "utf8", cwd: options.cwd, maxBuffer: 16 * 1024 * 1024 });
  if (result.error) return { status: null, output: String(result.error.message) };
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

const versionCache = new Map<string, string>();
export function toolVersion(key: string, command: string, args: readonly string[]): string {
  if (!versionCache.has(key)) {
    const out = run(command, args);
    versionCache.set(key, out.status === 0 ? (/\d+\.\d+(\.\d+)?/.exec(out.output)?.[0] ?? "?") : "missing");
  }
  return versionCache.get(key)!;
}

export function hasTool(name: string): boolean {
  return run("bash", ["-c", `command -v ${name}`]).status === 0;
}

/** A missing tool fails in CI and is reported as skipped elsewhere. */
export function missing(artifact: string, tool: string, how: string): CheckResult {
  const inCi = Boolean(process.env.CI);
  return { artifact, tool, version: "missing", ok: !inCi, skipped: !inCi, detail: `${tool} not found: ${how}` };
}

const kubeadmPaths = new Map<string, string | Error>();
/** The kubeadm of a Kubernetes patch version, built and cached by tools/kubeadm.sh on first use. */
export function kubeadmFor(patch: string): string | Error {
  if (!kubeadmPaths.has(patch)) {
    const out = spawnSync("bash", [path.join(PROJECT_DIR, "tools/kubeadm.sh"), patch], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    kubeadmPaths.set(patch, out.status === 0 ? out.stdout.trim() : new Error(`tools/kubeadm.sh ${patch} failed`));
  }
  return kubeadmPaths.get(patch)!;
}

/**
 * `kubeadm config validate`, and `kubeadm config images list` of the configuration: every image from
 * its image repository (registry.k8s.io unless imageRepository is set), named as kubeadm names them
 * (cmd/kubeadm/app/images/images.go: <repository>/<name>:<tag>, CoreDNS under coredns/coredns only on
 * registry.k8s.io), the API server at the pinned patch, and the pause image CRI-O is given
 * (renderCrioDropIn's, pauseImageFor) the one kubeadm expects for this configuration.
 */
export function checkKubeadmConfig(
  file: string,
  artifact: string,
  patch: string,
  imageRepository?: string,
): CheckResult[] {
  const kubeadm = kubeadmFor(patch);
  if (kubeadm instanceof Error)
    return [missing(artifact, "kubeadm", `${kubeadm.message} (needs Go and the Go module proxy)`)];
  const version = toolVersion(`kubeadm-${patch}`, kubeadm, ["version", "-o", "short"]);
  const validate = run(kubeadm, ["config", "validate", "--config", file]);
  const results: CheckResult[] = [
    {
      artifact,
      tool: "kubeadm config validate",
      version,
      ok: validate.status === 0,
      detail: validate.status === 0 ? "" : validate.output,
    },
  ];
  // The images the configuration implies must be the ones this kubeadm knows for its version.
  const text = fs.readFileSync(file, "utf8");
  if (/kind: ClusterConfiguration/.test(text)) {
    const images = run(kubeadm, ["config", "images", "list", "--config", file]);
    // One image a line; kubeadm's warnings (a configuration without kubernetesVersion makes it ask
    // dl.k8s.io) come in the same output and have spaces.
    const listed = images.output.split("\n").filter((line) => /^\S+$/.test(line));
    const repository = imageRepository ?? UPSTREAM.imageRepository;
    const names = listed.map((image) =>
      image.startsWith(`${repository}/`) ? image.slice(repository.length + 1).replace(/:[^:/]+$/, "") : `(${image})`,
    );
    const coredns = repository === UPSTREAM.imageRepository ? "coredns/coredns" : "coredns";
    const expectedNames = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", coredns];
    const expected = [`${repository}/kube-apiserver:v${patch}`, pauseImageFor(minorOfVersion(patch), imageRepository)];
    const ok =
      images.status === 0 &&
      JSON.stringify([...names].sort()) === JSON.stringify([...expectedNames, "etcd", "pause"].sort()) &&
      expected.every((image) => listed.includes(image));
    results.push({
      artifact,
      tool: "kubeadm config images list",
      version,
      ok,
      detail: ok
        ? ""
        : `expected ${[...expectedNames, "etcd", "pause"].join(", ")} under ${repository}/, ` +
          `with ${expected.join(" and ")}, in:\n${images.output}`,
    });
  }
  return results;
}

/**
 * CRI-O's pause image must be the one kubeadm expects, or versions drift (kubernetes#115610): the
 * pause image kubeadm lists for that version and image repository (the flags prepare-node.sh's
 * pre-pull passes).
 */
function checkPauseImage(file: string, artifact: string, patch: string, imageRepository?: string): CheckResult {
  const kubeadm = kubeadmFor(patch);
  if (kubeadm instanceof Error) return missing(artifact, "kubeadm", kubeadm.message);
  const version = toolVersion(`kubeadm-${patch}`, kubeadm, ["version", "-o", "short"]);
  const pause = /pause_image = "([^"]+)"/.exec(fs.readFileSync(file, "utf8"))?.[1];
  const repository = imageRepository ? ["--image-repository", imageRepository] : [];
  const images = run(kubeadm, ["config", "images", "list", "--kubernetes-version", `v${patch}`, ...repository]);
  const known = images.output.split("\n").filter((l) => l.includes("/pause:"));
  const ok = images.status === 0 && pause !== undefined && known.includes(pause);
  return {
    artifact,
    tool: "kubeadm config images list (pause)",
    version,
    ok,
    detail: ok
      ? ""
      : `CRI-O pause_image ${pause ?? "(none)"}; kubeadm v${patch} expects ${known.join(", ") || images.output}`,
  };
}

let registriesCheck: string | Error | undefined;
/** tests/artifacts/registries (go.podman.io/image, CRI-O's registries library), built and cached. */
function registriesCheckBinary(): string | Error {
  if (registriesCheck === undefined) {
    const out = spawnSync("bash", [path.join(PROJECT_DIR, "tools/registries-check.sh")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    registriesCheck = out.status === 0 ? out.stdout.trim() : new Error("tools/registries-check.sh failed");
  }
  return registriesCheck;
}

/**
 * Where CRI-O would pull from with this registries.conf.d drop-in: the real library's answer for an
 * image, one pull source per line (mirror first), or its error.
 */
export function pullSources(dropIn: string, image: string): Run | Error {
  const binary = registriesCheckBinary();
  if (binary instanceof Error) return binary;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "registries-"));
  try {
    fs.mkdirSync(path.join(dir, "registries.conf.d"));
    fs.writeFileSync(path.join(dir, "registries.conf"), "");
    fs.copyFileSync(dropIn, path.join(dir, "registries.conf.d", "50-ha-k8s-mirror.conf"));
    return run(binary, [path.join(dir, "registries.conf"), path.join(dir, "registries.conf.d"), image]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The mirror drop-in parses as TOML and sends docker.io, registry.k8s.io and quay.io pulls through
 * the mirror first, then to the registry itself; images of any other registry never go through it.
 */
export function checkRegistriesConfig(file: string, artifact: string, mirror: string | undefined): CheckResult[] {
  const text = fs.readFileSync(file, "utf8");
  const results: CheckResult[] = [];
  let parsed: unknown;
  try {
    parsed = parseToml(text);
  } catch (error) {
    parsed = error as Error;
  }
  const registries = (
    parsed as { registry?: { prefix?: string; location?: string; mirror?: { location?: string }[] }[] }
  )?.registry;
  const shapeOk =
    !(parsed instanceof Error) &&
    Array.isArray(registries) &&
    JSON.stringify(registries.map((r) => r.prefix)) === JSON.stringify(MIRRORED_REGISTRIES) &&
    registries.every((r) => r.location === r.prefix && r.mirror?.length === 1 && r.mirror[0].location === mirror);
  results.push({
    artifact,
    tool: "toml parse + mirror",
    version: "",
    ok: shapeOk,
    detail: shapeOk ? "" : parsed instanceof Error ? parsed.message : `unexpected content:\n${text}`,
  });
  const pause = kubernetesRelease(DEFAULT_KUBERNETES_MINOR).pauseImage;
  const calico = `quay.io/calico/node:${CALICO_VERSION}`;
  const expectations: [string, string[]][] = [
    ["busybox", [`${mirror}/library/busybox:latest`, "docker.io/library/busybox:latest"]],
    // Kubernetes' own images and Calico's: the same path below the mirror first, then their registry.
    [pause, [`${mirror}/${pause.slice("registry.k8s.io/".length)}`, pause]],
    [calico, [`${mirror}/${calico.slice("quay.io/".length)}`, calico]],
    // Any other registry is not the mirror's business.
    ["ghcr.io/example/tool:1.0", ["ghcr.io/example/tool:1.0"]],
  ];
  for (const [image, expected] of expectations) {
    const sources = pullSources(file, image);
    if (sources instanceof Error) {
      results.push(missing(artifact, "go.podman.io/image", `${sources.message} (needs Go and the Go module proxy)`));
      continue;
    }
    const got = sources.output.split("\n").filter(Boolean);
    const ok = sources.status === 0 && JSON.stringify(got) === JSON.stringify(expected);
    results.push({
      artifact,
      tool: `go.podman.io/image pull sources (${image})`,
      version: "v5.42.1",
      ok,
      detail: ok ? "" : `expected ${expected.join(", ")}; got:\n${sources.output}`,
    });
  }
  return results;
}

/** `gpg --show-keys`: the staged key is an OpenPGP public key gpg reads (add_apt_repo dearmors it). */
function checkRepositoryKey(file: string, artifact: string): CheckResult {
  if (!hasTool("gpg")) return missing(artifact, "gpg --show-keys", 'install the Debian package "gpg"');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gnupg-"));
  try {
    const shown = run("gpg", ["--homedir", home, "--batch", "--show-keys", "--with-colons", file]);
    const ok = shown.status === 0 && /^pub:/m.test(shown.output);
    return {
      artifact,
      tool: "gpg --show-keys",
      version: toolVersion("gpg", "gpg", ["--version"]),
      ok,
      detail: ok ? "" : shown.output,
    };
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
}

function checkHaproxyConfig(file: string, artifact: string): CheckResult {
  if (!hasTool("haproxy")) return missing(artifact, "haproxy -c", 'install the Debian package "haproxy"');
  const version = toolVersion("haproxy", "haproxy", ["-v"]);
  const check = run("haproxy", ["-c", "-f", file]);
  return {
    artifact,
    tool: "haproxy -c",
    version,
    ok: check.status === 0,
    detail: check.status === 0 ? "" : check.output,
  };
}

/** cloud-init's own schema check, and `sshd -t` on the sshd drop-in the cloud-config writes. */
function checkCloudConfig(file: string, artifact: string): CheckResult[] {
  const results: CheckResult[] = [];
  if (!hasTool("cloud-init")) {
    results.push(missing(artifact, "cloud-init schema", 'install the Debian package "cloud-init"'));
  } else {
    const schema = run("cloud-init", ["schema", "--config-file", file]);
    const ok = schema.status === 0 && /Valid/i.test(schema.output);
    results.push({
      artifact,
      tool: "cloud-init schema",
      version: toolVersion("cloud-init", "cloud-init", ["--version"]),
      ok,
      detail: ok ? "" : schema.output,
    });
  }
  const sshd = ["/usr/sbin/sshd", "sshd"].find((p) => run("bash", ["-c", `command -v ${p}`]).status === 0);
  if (!sshd) {
    results.push(missing(artifact, "sshd -t", 'install the Debian package "openssh-server"'));
    return results;
  }
  // The drop-in as sshd would include it, with a throwaway host key so the test needs no /etc/ssh.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sshd-"));
  const doc = parseAllDocuments(fs.readFileSync(file, "utf8"))[0].toJS() as { write_files: { content: string }[] };
  fs.writeFileSync(path.join(dir, "drop-in.conf"), doc.write_files[0].content);
  run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_key")]);
  fs.writeFileSync(path.join(dir, "sshd_config"), `Include ${dir}/drop-in.conf\nHostKey ${dir}/host_key\n`);
  // sshd -t wants its privilege separation directory; root (CI) creates it, others through sudo.
  if (!fs.existsSync("/run/sshd")) {
    try {
      fs.mkdirSync("/run/sshd", { recursive: true });
    } catch {
      run("sudo", ["-n", "mkdir", "-p", "/run/sshd"]);
    }
  }
  const test = run(sshd, ["-t", "-f", path.join(dir, "sshd_config")]);
  results.push({
    artifact,
    tool: "sshd -t (drop-in)",
    version: toolVersion("sshd", "bash", ["-c", `${sshd} -V 2>&1 || true`]),
    ok: test.status === 0,
    detail: test.status === 0 ? "" : test.output,
  });
  fs.rmSync(dir, { recursive: true, force: true });
  return results;
}

function checkScript(file: string, artifact: string): CheckResult[] {
  const syntax = run("bash", ["-n", file]);
  const results: CheckResult[] = [
    {
      artifact,
      tool: "bash -n",
      version: toolVersion("bash", "bash", ["--version"]),
      ok: syntax.status === 0,
      detail: syntax.status === 0 ? "" : syntax.output,
    },
  ];
  if (!hasTool("shellcheck")) {
    results.push(missing(artifact, "shellcheck", 'install the Debian package "shellcheck"'));
  } else {
    const lint = run("shellcheck", ["-x", file]);
    results.push({
      artifact,
      tool: "shellcheck",
      version: toolVersion("shellcheck", "shellcheck", ["--version"]),
      ok: lint.status === 0,
      detail: lint.status === 0 ? "" : lint.output,
    });
  }
  return results;
}

/** Every document parses; every `cidr` in it is the cluster's pod CIDR. */
function checkManifest(text: string, artifact: string, podCidr: string): CheckResult {
  const problems: string[] = [];
  const cidrs: string[] = [];
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === "object") {
      for (const [key, v] of Object.entries(value)) {
        if (key === "cidr" && typeof v === "string") cidrs.push(v);
        walk(v);
      }
    }
  };
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) problems.push(...doc.errors.map((e) => e.message));
    else walk(doc.toJS());
  }
  if (cidrs.length === 0) problems.push("no pod CIDR (cidr:) found");
  for (const cidr of cidrs) if (cidr !== podCidr) problems.push(`cidr ${cidr} differs from podCidr ${podCidr}`);
  return {
    artifact,
    tool: "yaml parse + pod CIDR",
    version: "",
    ok: problems.length === 0,
    detail: problems.join("; "),
  };
}

function checkPlan(text: string, artifact: string, config: ClusterConfig): CheckResult {
  try {
    const plan = JSON.parse(text) as { nodes: { role: string }[] };
    const count = (role: string) => plan.nodes.filter((n) => n.role === role).length;
    const ok =
      count("control-plane") === config.controlPlaneCount &&
      count("worker") === config.workerCount &&
      count("loadbalancer") === config.loadBalancerCount;
    return {
      artifact,
      tool: "json parse + node counts",
      version: "",
      ok,
      detail: ok ? "" : "node counts differ from the configuration",
    };
  } catch (error) {
    return { artifact, tool: "json parse", version: "", ok: false, detail: (error as Error).message };
  }
}

/** Checks every rendered file of one stack, written under `dir`. Identical files are checked once. */
export function checkRendered(files: readonly RenderedFile[], dir: string, config: ClusterConfig): CheckResult[] {
  const patch = kubernetesRelease(config.kubernetesVersion).patch;
  const seen = new Set<string>();
  const results: CheckResult[] = [];
  const units: RenderedFile[] = [];
  for (const file of files) {
    const key = `${file.kind}\n${path.basename(file.path)}\n${file.content}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const onDisk = path.join(dir, file.path);
    switch (file.kind) {
      case "kubeadm-config":
        results.push(...checkKubeadmConfig(onDisk, file.path, patch, config.imageRepository));
        break;
      case "haproxy-config":
        results.push(checkHaproxyConfig(onDisk, file.path));
        break;
      case "script":
        results.push(...checkScript(onDisk, file.path));
        break;
      case "manifest":
        results.push(checkManifest(file.content, file.path, config.podCidr));
        break;
      case "plan":
        results.push(checkPlan(file.content, file.path, config));
        break;
      case "cloud-config":
        results.push(...checkCloudConfig(onDisk, file.path));
        break;
      case "systemd-unit":
        units.push(file);
        break;
      case "registries-config":
        results.push(...checkRegistriesConfig(onDisk, file.path, config.registryMirror));
        break;
      case "other": {
        // One CRI-O drop-in per supported minor (prepare-node.sh picks the cluster's): each against
        // the kubeadm of that minor.
        const minor = /^crio-(\d+\.\d+)\.conf$/.exec(path.basename(file.path))?.[1];
        if (minor) {
          results.push(checkPauseImage(onDisk, file.path, kubernetesRelease(minor).patch, config.imageRepository));
        }
        // A repository key the configuration pins, staged for apt: gpg must read a public key in it.
        if (/-release\.key$/.test(file.path)) results.push(checkRepositoryKey(onDisk, file.path));
        break;
      }
    }
  }
  // A timer and the service it starts are verified together, once per distinct pair.
  const groups = new Map<string, RenderedFile[]>();
  for (const unit of units) groups.set(path.dirname(unit.path), [...(groups.get(path.dirname(unit.path)) ?? []), unit]);
  const checked = new Set<string>();
  for (const group of groups.values()) {
    const key = group.map((u) => `${path.basename(u.path)}\n${u.content}`).join("\n");
    if (checked.has(key)) continue;
    checked.add(key);
    results.push(...checkSystemdUnits(group));
  }
  results.push(checkEtcdVersion(patch, kubernetesRelease(config.kubernetesVersion).etcdVersion));
  return results;
}
