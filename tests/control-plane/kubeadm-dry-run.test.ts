// kubeadm's own dry runs with what the bundles carry:
//   - `kubeadm init --dry-run` with the rendered InitConfiguration and the cluster CA staged as
//     kubeadm-init.sh stages it, with the flags kubeadm-init.sh passes: every certificate it would
//     make is checked with openssl (signed by our CA, SANs the endpoint and the load balancer need);
//   - `kubeadm reset -f --dry-run` (leave.sh runs `kubeadm reset -f`) against the live control plane:
//     it would clean up and changes nothing.
// Dry runs write only to KUBEADM_INIT_DRYRUN_DIR (cmd/kubeadm/app/constants GetDryRunDir); the
// host's own /etc/kubernetes, /var/lib/kubelet and /var/lib/etcd are checked to stay untouched.

import * as fs from "fs";
import * as path from "path";
import { ClusterCa } from "./pki";
import { run, runOk } from "./exec";
import { machineConfig } from "./kubeadm-files";
import { HOST_PATHS, fingerprint, useControlPlane } from "./suite";

/** kubeadm-init.sh's staged shared keys and where it installs each under /etc/kubernetes/pki. */
const INSTALLED_KEYS: Readonly<Record<string, string>> = {
  "ca.crt": "ca.crt",
  "ca.key": "ca.key",
  "etcd-ca.crt": "etcd/ca.crt",
  "etcd-ca.key": "etcd/ca.key",
  "front-proxy-ca.crt": "front-proxy-ca.crt",
  "front-proxy-ca.key": "front-proxy-ca.key",
  "sa.key": "sa.key",
  "sa.pub": "sa.pub",
};

const controlPlane = useControlPlane();

/** The "X509v3 Subject Alternative Name" entries of a certificate, as openssl prints them. */
async function subjectAltNames(cert: string): Promise<string[]> {
  const text = await runOk("openssl", ["x509", "-in", cert, "-noout", "-ext", "subjectAltName"]);
  return text
    .split("\n")
    .slice(1)
    .join(",")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

async function verifiedBy(ca: ClusterCa | string, cert: string): Promise<boolean> {
  const caFile = typeof ca === "string" ? ca : ca.certFile;
  return (await run("openssl", ["verify", "-CAfile", caFile, cert])).code === 0;
}

describe("kubeadm dry runs with the rendered configuration", () => {
  let hostBefore: string[] = [];
  beforeAll(async () => {
    hostBefore = await Promise.all(HOST_PATHS.map(fingerprint));
  });

  test("kubeadm init --dry-run: every certificate signed by the cluster CA, the API server's valid for the endpoint, the load balancer and the node", async () => {
    const cp = controlPlane();
    const stack = cp.stack;
    const node = stack.controlPlanes[0];
    const init = stack.step("init", node.name);
    // A fresh first control plane: the keys Pulumi made in its pki, as kubeadm-init.sh installs them.
    const machine = fs.mkdtempSync(path.join(cp.dir, "init-dry-run-"));
    const pki = path.join(machine, "etc/kubernetes/pki");
    fs.mkdirSync(path.join(pki, "etcd"), { recursive: true });
    for (const [staged, file] of Object.entries(INSTALLED_KEYS)) {
      fs.copyFileSync(stack.staged(init, staged), path.join(pki, file));
    }
    const config = path.join(machine, "kubeadm-init.yaml");
    fs.writeFileSync(config, machineConfig(fs.readFileSync(stack.staged(init, "kubeadm-init.yaml"), "utf8"), pki), {
      mode: 0o600,
    });
    const out = path.join(machine, "dry-run");
    fs.mkdirSync(out);

    // kubeadm-init.sh's flags, plus --dry-run; preflight checks a real machine (CRI-O, kubelet,
    // ports), which this is not, so its findings are reported but not fatal.
    const result = await run(
      cp.binaries.kubeadm,
      ["init", "--config", config, "--upload-certs", "--skip-certificate-key-print", "--dry-run",
        "--ignore-preflight-errors=all"], // prettier-ignore
      { env: { ...process.env, KUBEADM_INIT_DRYRUN_DIR: out } },
    );
    expect(result.code).toBe(0);
    // kubeadm keeps every key it finds (certs.go, CreatePKIAssets; the "sa" pair in
    // CreateServiceAccountKeyAndPublicKeyFiles): the cluster it makes trusts Pulumi's keys.
    for (const kept of [
      "[certs] Using existing ca certificate authority",
      "[certs] Using existing front-proxy-ca certificate authority",
      "[certs] Using existing etcd/ca certificate authority",
    ]) {
      expect(result.output).toContain(kept);
    }
    expect(fs.readFileSync(path.join(out, "etcd/ca.crt"), "utf8")).toBe(cp.ca.controlPlaneKeys.etcdCaCertPem);
    expect(fs.readFileSync(path.join(out, "front-proxy-ca.crt"), "utf8")).toBe(
      cp.ca.controlPlaneKeys.frontProxyCaCertPem,
    );
    expect(result.output).toContain(
      `[dryrun] Wrote certificates, kubeconfig files and control plane manifests to the "${out}" directory`,
    );

    expect(fs.readFileSync(path.join(out, "ca.crt"), "utf8")).toBe(cp.ca.certPem);
    for (const cert of ["apiserver.crt", "apiserver-kubelet-client.crt"]) {
      expect({ cert, signedByClusterCa: await verifiedBy(cp.ca, path.join(out, cert)) }).toEqual({
        cert,
        signedByClusterCa: true,
      });
    }
    // The other CAs kubeadm makes, and what they sign.
    expect(await verifiedBy(path.join(out, "front-proxy-ca.crt"), path.join(out, "front-proxy-client.crt"))).toBe(true);
    for (const cert of [
      "etcd/server.crt",
      "etcd/peer.crt",
      "etcd/healthcheck-client.crt",
      "apiserver-etcd-client.crt",
    ]) {
      expect({ cert, signedByEtcdCa: await verifiedBy(path.join(out, "etcd/ca.crt"), path.join(out, cert)) }).toEqual({
        cert,
        signedByEtcdCa: true,
      });
    }

    const sans = await subjectAltNames(path.join(out, "apiserver.crt"));
    expect(sans).toEqual(
      expect.arrayContaining([
        `IP Address:${stack.plan.endpoint.internalIp}`, // controlPlaneEndpoint: every kubeconfig, every join
        `IP Address:${stack.values.externalIp}`, // the load balancer's public address (certSANs)
        `IP Address:${node.internalIp}`, // the node itself: HAProxy's health checks, kubeadm's local client
        "IP Address:10.96.0.1", // the kubernetes Service, first address of serviceCidr
        "DNS:kubernetes.default.svc.cluster.local",
        `DNS:${node.name}`,
      ]),
    );
    expect(await subjectAltNames(path.join(out, "etcd/peer.crt"))).toEqual(
      expect.arrayContaining([`IP Address:${node.internalIp}`, `DNS:${node.name}`]),
    );

    // The kubeconfigs it would write point at the endpoint and trust the cluster CA.
    const admin = fs.readFileSync(path.join(out, "admin.conf"), "utf8");
    expect(admin).toContain(`server: https://${stack.plan.endpoint.internalIp}:${stack.plan.endpoint.port}`);
    expect(admin).toContain(`certificate-authority-data: ${Buffer.from(cp.ca.certPem).toString("base64")}`);
  });

  test("kubeadm reset -f --dry-run on a control plane says what it would remove and changes nothing", async () => {
    const cp = controlPlane();
    const node = cp.stack.controlPlanes[2];
    const machine = cp.machine(node.name);
    const help = await runOk(cp.binaries.kubeadm, ["reset", "--help"]);
    expect(help).toContain("--dry-run");

    const membersBefore = (await cp.etcdctl(["member", "list"])).stdout;
    const filesBefore = await fingerprint(machine.kubernetesDir);
    // leave.sh's command; the machine's admin.conf and pki instead of the host's /etc/kubernetes.
    const result = await run(cp.binaries.kubeadm, ["reset", "-f", "--dry-run", "--kubeconfig", machine.adminConf,
      "--cert-dir", machine.pki]); // prettier-ignore
    expect(result.code).toBe(0);
    for (const step of [
      "[dryrun] Would stop the kubelet service",
      "[dryrun] Would remove Kubernetes-managed containers",
      `[dryrun] Would delete contents of directories: [/etc/kubernetes/manifests ${machine.pki}]`,
      "[dryrun] Would delete files: [/etc/kubernetes/admin.conf",
    ]) {
      expect(result.output).toContain(step);
    }
    expect(await fingerprint(machine.kubernetesDir)).toBe(filesBefore);
    expect((await cp.etcdctl(["member", "list"])).stdout).toBe(membersBefore);
  });

  afterAll(async () => {
    expect(await Promise.all(HOST_PATHS.map(fingerprint))).toEqual(hostBefore);
  });
});
