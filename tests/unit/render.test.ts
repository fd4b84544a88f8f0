import { parseAllDocuments } from "yaml";
import { execFileSync } from "child_process";
import { ClusterConfig, RawConfig, resolveConfig } from "../../render/config";
import { readProjectFile } from "../../render/project";
import { buildPlan } from "../../render/plan";
import { renderInitConfiguration, renderJoinConfiguration, CRI_SOCKET } from "../../render/kubeadm";
import {
  RENDER_PLACEHOLDERS,
  SEALED_OUTPUT_ITERATIONS,
  SEALED_OUTPUT_PREFIX,
  caCertHash,
  deriveJoinTokens,
  deriveOutputKey,
  openSealedOutput,
} from "../../render/secrets";
import { renderBundle, shellQuote, stageDir } from "../../render/bundle";
import { adminConfFromStepOutput, publicKubeconfig } from "../../render/kubeconfig";
import { renderCrioDropIn, renderRegistriesDropIn } from "../../render/crio";
import { parse as parseToml } from "smol-toml";
import { readScriptSources } from "../../render/scripts";
import { renderStepCommand } from "../../render/steps";
import { SUPPORTED_KUBERNETES } from "../../render/versions";
import { renderCalicoResources } from "../../render/calico";
import { renderCloudConfig } from "../../render/cloudinit";
import { TEST_CA_CERT, TEST_CA_CERT_HASH, FAKE_ADMIN_CONF, sealLikeKubeconfigSh } from "./fixtures";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const config: ClusterConfig = resolveConfig({ workerCount: 2 }, readProjectFile().defaults).config!;
const plan = buildPlan(config);
const node = (name: string) => plan.nodes.find((n) => n.name === name)!;
const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any -- parsed YAML is untyped; tests index into it

describe("kubeadm configuration", () => {
  const init = docs(
    renderInitConfiguration(config, plan, node("ha-k8s-cp-1"), RENDER_PLACEHOLDERS, { externalIp: "198.51.100.7" }),
  );

  test("init: v1beta4 Init + Cluster + Kubelet configuration", () => {
    expect(init.map((d) => `${d.apiVersion} ${d.kind}`)).toEqual([
      "kubeadm.k8s.io/v1beta4 InitConfiguration",
      "kubeadm.k8s.io/v1beta4 ClusterConfiguration",
      "kubelet.config.k8s.io/v1beta1 KubeletConfiguration",
    ]);
  });

  test("init: endpoint, SANs, subnets, version, CRI-O socket, node IP, certificate key", () => {
    const [initCfg, cluster, kubelet] = init;
    expect(cluster.controlPlaneEndpoint).toBe("10.10.0.2:6443");
    expect(cluster.apiServer.certSANs).toEqual(["10.10.0.2", "198.51.100.7"]);
    expect(cluster.networking).toMatchObject({ podSubnet: "10.244.0.0/16", serviceSubnet: "10.96.0.0/12" });
    expect(cluster.kubernetesVersion).toBe("v1.36.3");
    expect(initCfg.nodeRegistration.criSocket).toBe(CRI_SOCKET);
    expect(initCfg.nodeRegistration.kubeletExtraArgs).toEqual([{ name: "node-ip", value: "10.10.0.10" }]);
    expect(initCfg.localAPIEndpoint).toEqual({ advertiseAddress: "10.10.0.10", bindPort: 6443 });
    expect(initCfg.certificateKey).toBe(RENDER_PLACEHOLDERS.certificateKey);
    expect(initCfg.bootstrapTokens[0].token).toBe(RENDER_PLACEHOLDERS.bootstrapToken);
    expect(kubelet.cgroupDriver).toBe("systemd");
  });

  test("control-plane join carries its advertise address and the certificate key; worker join does not", () => {
    const [cp] = docs(renderJoinConfiguration(plan, node("ha-k8s-cp-2"), RENDER_PLACEHOLDERS));
    expect(cp.kind).toBe("JoinConfiguration");
    expect(cp.discovery.bootstrapToken).toEqual({
      apiServerEndpoint: "10.10.0.2:6443",
      token: RENDER_PLACEHOLDERS.bootstrapToken,
      caCertHashes: [RENDER_PLACEHOLDERS.caCertHash],
    });
    expect(cp.controlPlane).toEqual({
      localAPIEndpoint: { advertiseAddress: "10.10.0.11", bindPort: 6443 },
      certificateKey: RENDER_PLACEHOLDERS.certificateKey,
    });
    const [worker] = docs(renderJoinConfiguration(plan, node("ha-k8s-worker-1"), RENDER_PLACEHOLDERS));
    expect(worker.controlPlane).toBeUndefined();
    expect(worker.nodeRegistration.kubeletExtraArgs).toEqual([{ name: "node-ip", value: "10.10.0.20" }]);
    expect(() => renderJoinConfiguration(plan, node("ha-k8s-lb-1"), RENDER_PLACEHOLDERS)).toThrow(
      /only control planes and workers/,
    );
  });

  test("a control plane with the shared keys on disk (a rebuilt first one) joins without the certificate key", () => {
    const [cp] = docs(renderJoinConfiguration(plan, node("ha-k8s-cp-1"), RENDER_PLACEHOLDERS, { keysOnDisk: true }));
    expect(cp.controlPlane).toEqual({ localAPIEndpoint: { advertiseAddress: "10.10.0.10", bindPort: 6443 } });
    expect(cp.discovery.bootstrapToken.token).toBe(RENDER_PLACEHOLDERS.bootstrapToken);
  });
});

describe("the kubeconfig step's sealed output", () => {
  test("what the real openssl seals (kubeconfig.sh's command) opens with the output key, and with no other", () => {
    const key = deriveOutputKey("s".repeat(64));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sealed-"));
    fs.writeFileSync(path.join(dir, "output-key"), `${key}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, "admin.conf"), FAKE_ADMIN_CONF);
    const sealed = execFileSync(
      "openssl",
      ["enc", "-aes-256-cbc", "-pbkdf2", "-iter", String(SEALED_OUTPUT_ITERATIONS), "-md", "sha256", "-salt",
        "-pass", `file:${path.join(dir, "output-key")}`, "-in", path.join(dir, "admin.conf"), "-a", "-A"], // prettier-ignore
      { encoding: "utf8" },
    );
    fs.rmSync(dir, { recursive: true });
    const printed = `${SEALED_OUTPUT_PREFIX}${sealed}\n`;
    expect(printed).not.toContain("certificate-authority-data");
    expect(openSealedOutput(printed, key)).toBe(FAKE_ADMIN_CONF);
    expect(() => openSealedOutput(printed, deriveOutputKey("t".repeat(64)))).toThrow();
    expect(() => openSealedOutput(FAKE_ADMIN_CONF, key)).toThrow(/not sealed/);
    // A stack last updated before outputs were sealed still holds admin.conf in clear: taken as it is.
    expect(adminConfFromStepOutput(printed, key)).toBe(FAKE_ADMIN_CONF);
    expect(adminConfFromStepOutput(FAKE_ADMIN_CONF, key)).toBe(FAKE_ADMIN_CONF);
    // The mocks' sealer writes the same format.
    expect(openSealedOutput(sealLikeKubeconfigSh(FAKE_ADMIN_CONF, key), key)).toBe(FAKE_ADMIN_CONF);
  });
});

describe("join secrets", () => {
  test("secrets that look like numbers stay strings in the YAML kubeadm reads", () => {
    const numeric = {
      bootstrapToken: "123456.1234567890123456",
      certificateKey: "1".repeat(64),
      caCertHash: `sha256:${"2".repeat(64)}`,
    };
    const [initCfg] = docs(
      renderInitConfiguration(config, plan, node("ha-k8s-cp-1"), numeric, { externalIp: "198.51.100.7" }),
    );
    expect(initCfg.bootstrapTokens[0].token).toBe(numeric.bootstrapToken);
    expect(initCfg.certificateKey).toBe(numeric.certificateKey);
    const [join] = docs(renderJoinConfiguration(plan, node("ha-k8s-cp-2"), numeric));
    expect(join.controlPlane.certificateKey).toBe(numeric.certificateKey);
    expect(join.discovery.bootstrapToken.token).toBe(numeric.bootstrapToken);
  });

  test("derived token and key have kubeadm's formats, are stable, and differ per seed", () => {
    const seed = "x".repeat(64);
    const a = deriveJoinTokens(seed);
    expect(a.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(a.certificateKey).toMatch(/^[0-9a-f]{64}$/);
    expect(deriveJoinTokens(seed)).toEqual(a);
    const b = deriveJoinTokens("y".repeat(64));
    expect(b.bootstrapToken).not.toBe(a.bootstrapToken);
    expect(b.certificateKey).not.toBe(a.certificateKey);
    expect(() => deriveJoinTokens("short")).toThrow(/too short/);
  });

  test("caCertHash matches openssl's SPKI digest", () => {
    expect(caCertHash(TEST_CA_CERT)).toBe(TEST_CA_CERT_HASH);
  });

  test("placeholders are well-formed for kubeadm", () => {
    expect(RENDER_PLACEHOLDERS.bootstrapToken).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(RENDER_PLACEHOLDERS.certificateKey).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("bundles", () => {
  const sources = {
    "lib.sh": 'log() { echo "$*" >&2; }\n',
    "demo.sh": '. "$(dirname "$0")/lib.sh"\nlog "hello $GREETING"\ncat "$HA_K8S_STAGE/data"\n',
  };

  test("stage directories are derived from step ids and reject traversal", () => {
    expect(stageDir("ha-k8s-cp-1/init")).toBe("/var/lib/ha-k8s/steps/ha-k8s-cp-1--init");
    expect(() => stageDir("../etc")).toThrow();
    expect(() => stageDir("a/../../b")).toThrow();
  });

  test("shellQuote survives quotes, dollars and newlines", () => {
    const nasty = `it's $HOME "x"\n\`id\``;
    expect(execFileSync("bash", ["-c", `printf %s ${shellQuote(nasty)}`]).toString()).toBe(nasty);
  });

  test("a bundle stages its files and runs the script with its environment (real bash)", () => {
    const root = execFileSync("mktemp", ["-d"]).toString().trim();
    const bundle = renderBundle(
      {
        stepId: "demo/step",
        script: "demo.sh",
        env: { GREETING: "world 'quoted'" },
        files: [{ name: "data", content: "payload $NOT_EXPANDED", mode: 0o600 }],
      },
      sources,
    ).replaceAll("/var/lib/ha-k8s/steps", root);
    const result = execFileSync("bash", ["-s"], { input: bundle, stdio: ["pipe", "pipe", "pipe"] }).toString();
    expect(result).toBe("payload $NOT_EXPANDED\n");
    expect(
      execFileSync("stat", ["-c", "%a", `${root}/demo--step/data`])
        .toString()
        .trim(),
    ).toBe("600");
  });

  test("a machine stage holds only the last run's files: an optional file a later run drops is gone (real bash)", () => {
    const root = execFileSync("mktemp", ["-d"]).toString().trim();
    const optional = { "lib.sh": "", "demo.sh": 'ls "$HA_K8S_STAGE" | grep -vx -e env -e lib.sh -e demo.sh || true\n' };
    const run = (files: { name: string; content: string; mode: number }[]) =>
      execFileSync("bash", ["-s"], {
        input: renderBundle({ stepId: "demo/step", script: "demo.sh", env: {}, files }, optional).replaceAll(
          "/var/lib/ha-k8s/steps",
          root,
        ),
      }).toString();
    expect(
      run([
        { name: "data", content: "x", mode: 0o600 },
        { name: "optional.key", content: "k", mode: 0o644 },
      ]),
    ).toBe("data\noptional.key\n");
    // The next run no longer stages optional.key (its setting was removed): the script must not find it.
    expect(run([{ name: "data", content: "x", mode: 0o600 }])).toBe("data\n");
  });

  test("rejects a missing script, a bad variable name and content containing the terminator", () => {
    expect(() => renderBundle({ stepId: "a/b", script: "nope.sh", env: {} }, sources)).toThrow(/no script nope.sh/);
    expect(() => renderBundle({ stepId: "a/b", script: "demo.sh", env: { "bad-name": "x" } }, sources)).toThrow(
      /not allowed/,
    );
    expect(() =>
      renderBundle(
        { stepId: "a/b", script: "demo.sh", env: {}, files: [{ name: "f", content: "x\nHA_K8S_EOF\n", mode: 0o600 }] },
        sources,
      ),
    ).toThrow(/terminator/);
  });
});

describe("small renderers", () => {
  test("cloud-config raises sshd's MaxStartups for parallel bootstrap connections", () => {
    const text = renderCloudConfig();
    expect(text.startsWith("#cloud-config\n")).toBe(true);
    const [config] = docs(text);
    expect(config.write_files[0]).toMatchObject({ path: "/etc/ssh/sshd_config.d/60-ha-k8s.conf", permissions: "0644" });
    expect(config.write_files[0].content).toMatch(/^MaxStartups 200:30:1000$/m);
    // UnusedConnectionTimeout: a candidate outside sshd_config.d, installed only where sshd -t accepts it.
    expect(config.write_files[1]).toMatchObject({
      path: "/etc/ssh/ha-k8s-unused-connection.conf",
      permissions: "0644",
    });
    expect(config.write_files[1].content).toMatch(/^UnusedConnectionTimeout 300$/m);
    expect(config.runcmd).toEqual([
      ["sh", "-c", expect.stringMatching(/\/usr\/sbin\/sshd -t \|\| \{ rm -f \/etc\/ssh\/sshd_config.d\/61-/)],
      ["systemctl", "reload-or-restart", "ssh"],
    ]);
  });

  test("public kubeconfig points at the external address", () => {
    const out = publicKubeconfig(FAKE_ADMIN_CONF, "198.51.100.7", 6443);
    expect(out).toContain("    server: https://198.51.100.7:6443");
    expect(out).not.toContain("10.10.0.2");
    expect(() => publicKubeconfig("apiVersion: v1\n", "1.2.3.4", 6443)).toThrow(/exactly one server/);
  });

  test("CRI-O drop-in: systemd cgroups and kubeadm's pause image", () => {
    const text = renderCrioDropIn("1.36");
    expect(text).toContain('cgroup_manager = "systemd"');
    expect(text).toContain('pause_image = "registry.k8s.io/pause:3.10.2"');
  });

  test("Calico installation uses the configured pod CIDR with VXLAN", () => {
    const [installation, apiServer] = docs(renderCalicoResources({ podCidr: "10.200.0.0/16" }));
    expect(installation.kind).toBe("Installation");
    expect(installation.spec.calicoNetwork.ipPools[0]).toMatchObject({ cidr: "10.200.0.0/16", encapsulation: "VXLAN" });
    expect(installation.spec.calicoNetwork.bgp).toBe("Disabled");
    expect(apiServer.kind).toBe("APIServer");
  });

  test("Calico's images come from quay.io, never anonymous Docker Hub pulls", () => {
    const [installation] = docs(renderCalicoResources({ podCidr: "10.200.0.0/16" }));
    expect(installation.spec.registry).toBe("quay.io/");
  });

  test("the prepare bundle names no current version: a kubernetesVersion change leaves it as it is", () => {
    const sources = readScriptSources();
    const prepareOf = (minor: string) => {
      const cfg = resolveConfig({ kubernetesVersion: minor }, readProjectFile().defaults).config!;
      // A running 1.36.3 cluster (the stack's last outputs): set to 1.37, an upgrade.
      const p = buildPlan(cfg, { kubernetesVersion: "1.36.3" });
      return renderStepCommand(
        cfg,
        p,
        p.steps.find((s) => s.id === "ha-k8s-worker-1/prepare")!,
        undefined,
        sources,
      ).bundle;
    };
    expect(prepareOf("1.37")).toBe(prepareOf("1.36"));
  });

  test("registry mirror: a registries.conf drop-in pulling docker.io, registry.k8s.io and quay.io through the mirror", () => {
    const text = renderRegistriesDropIn("mirror.gcr.io");
    const parsed = parseToml(text) as {
      registry: { prefix: string; location: string; mirror: { location: string }[] }[];
    };
    // Each registry stays its own location, so a pull the mirror cannot serve falls back to it.
    expect(parsed.registry).toEqual(
      ["docker.io", "registry.k8s.io", "quay.io"].map((registry) => ({
        prefix: registry,
        location: registry,
        mirror: [{ location: "mirror.gcr.io" }],
      })),
    );
  });

  test("the prepare bundle stages the mirror drop-in only when registryMirror is set", () => {
    const sources = readScriptSources();
    const prepareOf = (values: RawConfig) => {
      const cfg = resolveConfig(values, readProjectFile().defaults).config!;
      const p = buildPlan(cfg);
      return renderStepCommand(
        cfg,
        p,
        p.steps.find((s) => s.id === "ha-k8s-worker-1/prepare")!,
        undefined,
        sources,
      );
    };
    const perMinor = Object.keys(SUPPORTED_KUBERNETES).map((minor) => `crio-${minor}.conf`);
    expect(prepareOf({}).files.map((f) => f.name)).toEqual(perMinor);
    const mirrored = prepareOf({ registryMirror: "europe-docker.pkg.dev/p/hub" });
    expect(mirrored.files.map((f) => f.name)).toEqual([...perMinor, "registries-mirror.conf"]);
    expect(mirrored.files.at(-1)?.kind).toBe("registries-config");
    expect(mirrored.bundle).toContain('location = "europe-docker.pkg.dev/p/hub"');
    expect(mirrored.bundle).toContain("REGISTRIES_DROP_IN='/etc/containers/registries.conf.d/50-ha-k8s-mirror.conf'");
  });
});
