// The join credentials against the real API server: refresh-credentials.sh's bundles as rendered,
// run on the first control plane, then kubeadm's own discovery with the rendered JoinConfigurations.
// Tests run in order; each leaves the cluster as the next expects it.

import { createDecipheriv } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { ApiCredentials, apiJson, apiRequest, credentialsFromKubeconfig } from "./api";
import { ControlPlane } from "./cluster";
import { run, waitFor } from "./exec";
import { configDocument } from "./kubeadm-files";
import { runStep } from "./bundles";
import { useControlPlane } from "./suite";
import { JOIN_CREDENTIALS_TTL_HOURS } from "../../render/kubeadm";

const controlPlane = useControlPlane();

interface SecretObject {
  type: string;
  metadata: { uid: string; ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string }[] };
  data: Record<string, string>;
}

const decode = (value: string | undefined) => Buffer.from(value ?? "", "base64").toString();
const tokenId = (cp: ControlPlane) => cp.stack.values.bootstrapToken.split(".")[0];
const tokenSecretName = (cp: ControlPlane) => `bootstrap-token-${tokenId(cp)}`;

/** A kube-system Secret as the admin reads it (in-process: its data never passes through a log). */
async function getSecret(cp: ControlPlane, name: string): Promise<SecretObject | undefined> {
  const response = await apiRequest(
    credentialsFromKubeconfig(cp.first.adminConf),
    "GET",
    `/api/v1/namespaces/kube-system/secrets/${name}`,
  );
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw new Error(`GET secret ${name}: HTTP ${response.status}`);
  return JSON.parse(response.body) as SecretObject;
}

async function setTokenExpiration(cp: ControlPlane, at: Date): Promise<void> {
  const patch = { stringData: { expiration: at.toISOString().replace(/\.\d+Z$/, "Z") } };
  const result = await cp.kubectl(["-n", "kube-system", "patch", "secret", tokenSecretName(cp), "--type=merge",
    "-p", JSON.stringify(patch)]); // prettier-ignore
  expect(result.output).toContain("patched");
}

const hoursFromNow = (date: string) => (Date.parse(date) - Date.now()) / 3_600_000;

/** The bootstrap token's identity, as the API server authenticates it. */
function asToken(cp: ControlPlane): ApiCredentials {
  return { server: `https://${cp.endpoint}`, ca: cp.ca.certPem, token: cp.stack.values.bootstrapToken };
}

async function whoAmI(credentials: ApiCredentials): Promise<{ status: number; username?: string; groups?: string[] }> {
  const review = await apiRequest(credentials, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
    apiVersion: "authentication.k8s.io/v1",
    kind: "SelfSubjectReview",
  });
  if (review.status !== 201) return { status: review.status };
  const user = (JSON.parse(review.body) as { status: { userInfo: { username: string; groups: string[] } } }).status
    .userInfo;
  return { status: review.status, ...user };
}

async function clusterInfoSignatures(cp: ControlPlane): Promise<string[]> {
  const response = await apiRequest(
    { server: `https://${cp.endpoint}`, ca: cp.ca.certPem },
    "GET",
    "/api/v1/namespaces/kube-public/configmaps/cluster-info",
  );
  const data = (JSON.parse(response.body) as { data: Record<string, string> }).data;
  return Object.keys(data).filter((k) => k.startsWith("jws-kubeconfig-"));
}

/**
 * One entry of the kubeadm-certs Secret, decrypted with the certificate key as kubeadm's
 * download-certs does: AES-GCM, the nonce first, Go's 16-byte tag last (cmd/kubeadm/app/util/crypto).
 */
function decryptCertsEntry(sealed: Buffer, certificateKey: string): string {
  const nonce = sealed.subarray(0, 12);
  const tag = sealed.subarray(sealed.length - 16);
  const decipher = createDecipheriv("aes-256-gcm", Buffer.from(certificateKey, "hex"), nonce);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]).toString();
}

describe("refresh-credentials.sh, as rendered, against the real API server", () => {
  test("keeps the token kubeadm's bootstrap-token phase created from the rendered InitConfiguration", async () => {
    const cp = controlPlane();
    const before = await getSecret(cp, tokenSecretName(cp));
    const result = await runStep(cp, cp.stack.step("credentials", "workers"));
    expect(result.code).toBe(0);
    expect(result.leakedSecret).toBe(false);
    expect(result.output).toMatch(new RegExp(`bootstrap token ${tokenId(cp)} valid for another 16\\d h; keeping it`));
    expect((await getSecret(cp, tokenSecretName(cp)))?.data.expiration).toBe(before?.data.expiration);
  });

  test("issues a missing token with every field the API server's bootstrap authenticator and signer need", async () => {
    const cp = controlPlane();
    await cp.kubectl(["-n", "kube-system", "delete", "secret", tokenSecretName(cp)]);
    expect(await getSecret(cp, tokenSecretName(cp))).toBeUndefined();
    // Its signature goes first, so the signature checked below is the re-issued token's own.
    await waitFor(
      "cluster-info to lose the deleted token's signature",
      async () => !(await clusterInfoSignatures(cp)).includes(`jws-kubeconfig-${tokenId(cp)}`),
      30_000,
    );

    const result = await runStep(cp, cp.stack.step("credentials", "workers"));
    expect(result.code).toBe(0);
    expect(result.leakedSecret).toBe(false);
    expect(result.output).toContain(
      `bootstrap token ${tokenId(cp)} missing or expiring: issuing it for ${JOIN_CREDENTIALS_TTL_HOURS} h`,
    );

    const secret = (await getSecret(cp, tokenSecretName(cp)))!;
    expect(secret.type).toBe("bootstrap.kubernetes.io/token");
    expect(decode(secret.data["token-id"])).toBe(tokenId(cp));
    expect(decode(secret.data["token-secret"]) === cp.stack.values.bootstrapToken.split(".")[1]).toBe(true);
    expect(decode(secret.data["usage-bootstrap-authentication"])).toBe("true");
    expect(decode(secret.data["usage-bootstrap-signing"])).toBe("true");
    expect(decode(secret.data["auth-extra-groups"])).toBe("system:bootstrappers:kubeadm:default-node-token");
    expect(hoursFromNow(decode(secret.data.expiration))).toBeCloseTo(JOIN_CREDENTIALS_TTL_HOURS, 1);

    // The API server authenticates it, with the group kubeadm's RBAC grants joins to...
    const me = await whoAmI(asToken(cp));
    expect(me).toEqual({
      status: 201,
      username: `system:bootstrap:${tokenId(cp)}`,
      groups: expect.arrayContaining(["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token"]),
    });
    // ...and kube-controller-manager's bootstrap signer signs cluster-info for it.
    await waitFor(
      "cluster-info signed for the token",
      async () => (await clusterInfoSignatures(cp)).includes(`jws-kubeconfig-${tokenId(cp)}`),
      30_000,
    );
  });

  test("renews a token with less than a seventh of its life left", async () => {
    const cp = controlPlane();
    await setTokenExpiration(cp, new Date(Date.now() + ((JOIN_CREDENTIALS_TTL_HOURS / 7) * 3_600_000) / 2));
    const result = await runStep(cp, cp.stack.step("credentials", "workers"));
    expect(result.code).toBe(0);
    expect(result.output).toContain("missing or expiring: issuing it");
    const secret = (await getSecret(cp, tokenSecretName(cp)))!;
    expect(hoursFromNow(decode(secret.data.expiration))).toBeCloseTo(JOIN_CREDENTIALS_TTL_HOURS, 1);
  });

  test("uploads the control-plane certificates for a control-plane join, tied to our token, readable with it, sealed with the certificate key", async () => {
    const cp = controlPlane();
    const joining = cp.stack.controlPlanes[1].name;
    const result = await runStep(cp, cp.stack.step("credentials", joining));
    expect(result.code).toBe(0);
    expect(result.leakedSecret).toBe(false);
    expect(result.output).toContain(`tying the uploaded certificates to bootstrap token ${tokenId(cp)}`);
    // The joining machine's address already holds a live member here (every member of this control
    // plane runs): the lost-member check asks it, through real etcd and curl, and keeps it.
    expect(result.output).toMatch(new RegExp(`etcd member [0-9a-f]+ at https://[0-9.]+:2380 answers .*keeping it`));
    expect(result.output).not.toContain("removing etcd member");

    const token = (await getSecret(cp, tokenSecretName(cp)))!;
    const certs = (await getSecret(cp, "kubeadm-certs"))!;
    expect(certs.metadata.ownerReferences).toEqual([
      expect.objectContaining({ apiVersion: "v1", kind: "Secret", name: tokenSecretName(cp), uid: token.metadata.uid }),
    ]);
    // What a joining control plane does with them: read them with the token (kubeadm's RBAC)...
    const asJoin = await apiJson<SecretObject>(
      asToken(cp),
      "GET",
      "/api/v1/namespaces/kube-system/secrets/kubeadm-certs",
    );
    // ...and open them with the certificate key: the cluster CA, the etcd CA, the service-account key.
    const open = (name: string) =>
      decryptCertsEntry(Buffer.from(asJoin.data[name], "base64"), cp.stack.values.certificateKey);
    expect(open("ca.crt")).toBe(cp.ca.certPem);
    expect(open("ca.key") === fs.readFileSync(path.join(cp.first.pki, "ca.key"), "utf8")).toBe(true);
    expect(open("etcd-ca.crt")).toBe(fs.readFileSync(path.join(cp.first.pki, "etcd/ca.crt"), "utf8"));
    expect(open("sa.pub")).toBe(fs.readFileSync(path.join(cp.first.pki, "sa.pub"), "utf8"));

    // Run again: nothing changes but the upload itself (idempotent).
    const again = await runStep(cp, cp.stack.step("credentials", joining));
    expect(again.code).toBe(0);
    expect((await getSecret(cp, "kubeadm-certs"))?.metadata.ownerReferences?.[0].uid).toBe(token.metadata.uid);
  });

  test("the uploaded certificates go when our token goes (the garbage collector follows the owner)", async () => {
    const cp = controlPlane();
    await cp.kubectl(["-n", "kube-system", "delete", "secret", tokenSecretName(cp)]);
    await waitFor("kubeadm-certs to be garbage-collected", async () => !(await getSecret(cp, "kubeadm-certs")), 60_000);
    await waitFor(
      "cluster-info to lose the deleted token's signature",
      async () => !(await clusterInfoSignatures(cp)).includes(`jws-kubeconfig-${tokenId(cp)}`),
      30_000,
    );
    // Back for the joins below.
    expect((await runStep(cp, cp.stack.step("credentials", cp.stack.controlPlanes[1].name))).code).toBe(0);
    await waitFor(
      "cluster-info signed for the token",
      async () => (await clusterInfoSignatures(cp)).includes(`jws-kubeconfig-${tokenId(cp)}`),
      30_000,
    );
  });
});

/** `kubeadm join <args> --config <file>`: preflight examines a real machine, which this is not. */
function kubeadmJoin(cp: ControlPlane, config: string, args: readonly string[], dryRunDir?: string) {
  return run(cp.binaries.kubeadm, ["join", ...args, "--config", config, "--ignore-preflight-errors=all"], {
    env: { ...process.env, ...(dryRunDir ? { KUBEADM_JOIN_DRYRUN_DIR: dryRunDir } : {}) },
  });
}

/** A copy of a rendered JoinConfiguration with some fields changed. */
function joinConfigCopy(cp: ControlPlane, node: string, change: (join: Record<string, unknown>) => void): string {
  const join = configDocument(
    fs.readFileSync(cp.stack.staged(cp.stack.step("join", node), "kubeadm-join.yaml"), "utf8"),
    "JoinConfiguration",
  );
  change(join);
  const file = path.join(fs.mkdtempSync(path.join(cp.dir, "join-")), "kubeadm-join.yaml");
  fs.writeFileSync(file, stringify(join), { mode: 0o600 });
  return file;
}

describe("kubeadm join with the rendered JoinConfiguration against this API server", () => {
  test("a worker's join (--dry-run) passes discovery: token, CA pin and the signed cluster-info", async () => {
    const cp = controlPlane();
    const worker = cp.stack.workers[1].name; // no Node of that name: kubeadm refuses to join over a Ready one
    const out = fs.mkdtempSync(path.join(cp.dir, "join-dry-run-"));
    const result = await kubeadmJoin(
      cp,
      cp.stack.staged(cp.stack.step("join", worker), "kubeadm-join.yaml"),
      ["--dry-run"],
      out,
    );
    expect(result.code).toBe(0);
    // kubeadm's dry run swaps in a placeholder token when the real one has no signature
    // (mutateTokenDiscoveryForDryRun in cmd/kubeadm/app/discovery/token); this one did not need to.
    expect(result.output).not.toContain("Mutating the JoinConfiguration");
    expect(result.output).toContain("[kubelet-start] Would start the kubelet");
    // What the kubelet would TLS-bootstrap with: the endpoint, our CA, our token.
    const bootstrap = fs.readFileSync(path.join(out, "bootstrap-kubelet.conf"), "utf8");
    expect(bootstrap).toContain(`server: https://${cp.endpoint}`);
    expect(bootstrap).toContain(`certificate-authority-data: ${Buffer.from(cp.ca.certPem).toString("base64")}`);
    expect(bootstrap.includes(`token: ${cp.stack.values.bootstrapToken}`)).toBe(true);
  });

  test("a control plane's join (--dry-run) passes discovery and opens the uploaded certificates with the certificate key", async () => {
    const cp = controlPlane();
    const node = cp.stack.controlPlanes[1];
    const out = fs.mkdtempSync(path.join(cp.dir, "join-dry-run-"));
    const result = await kubeadmJoin(
      cp,
      cp.stack.staged(cp.stack.step("join", node.name), "kubeadm-join.yaml"),
      ["--dry-run"],
      out,
    );
    expect(result.code).toBe(0);
    expect(result.output).not.toContain("Mutating the JoinConfiguration");
    expect(result.output).toContain('[download-certs] Downloading the certificates in Secret "kubeadm-certs"');
    // The real Secret, opened (the dry run's own stand-in for it is empty, and nothing would be saved).
    expect(fs.readFileSync(path.join(out, "ca.crt"), "utf8")).toBe(cp.ca.certPem);
    expect(fs.readFileSync(path.join(out, "ca.key"), "utf8") === cp.ca.keyPem).toBe(true);
    expect(fs.readFileSync(path.join(out, "etcd/ca.crt"), "utf8")).toBe(
      fs.readFileSync(path.join(cp.first.pki, "etcd/ca.crt"), "utf8"),
    );
    expect(result.output).toMatch(
      new RegExp(
        `apiserver serving cert is signed for DNS names \\[${node.name} .*\\] and IPs \\[.*${node.internalIp.replace(/\./g, "\\.")} ${cp.stack.plan.endpoint.internalIp.replace(/\./g, "\\.")} ${cp.stack.values.externalIp.replace(/\./g, "\\.")}\\]`,
      ),
    );
  });

  test("with a CA hash that is not the cluster's, discovery fails with kubeadm's own error", async () => {
    const cp = controlPlane();
    const worker = cp.stack.workers[1].name;
    const wrongHash = `sha256:${"ab".repeat(32)}`;
    const config = joinConfigCopy(cp, worker, (join) => {
      (join.discovery as { bootstrapToken: { caCertHashes: string[] } }).bootstrapToken.caCertHashes = [wrongHash];
    });
    const result = await kubeadmJoin(cp, config, ["--dry-run"], fs.mkdtempSync(path.join(cp.dir, "join-dry-run-")));
    expect(result.code).not.toBe(0);
    expect(result.output).toContain(
      `couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "${cp.stack.values.caCertHash}" are pinned`,
    );
  });

  test("with an expired token, the API server refuses it and discovery fails with kubeadm's own error", async () => {
    const cp = controlPlane();
    await setTokenExpiration(cp, new Date(Date.now() - 60_000));
    // kube-controller-manager's token cleaner deletes it; its bootstrap signer drops its signature.
    await waitFor(
      "the token cleaner to delete the expired token",
      async () => !(await getSecret(cp, tokenSecretName(cp))),
      30_000,
    );
    await waitFor(
      "cluster-info to lose the expired token's signature",
      async () => !(await clusterInfoSignatures(cp)).includes(`jws-kubeconfig-${tokenId(cp)}`),
      30_000,
    );
    // kube-apiserver caches a successful token authentication for 10 s (TokenSuccessCacheTTL,
    // pkg/kubeapiserver/options/authentication.go).
    await waitFor(
      "the API server to refuse the expired token",
      async () => (await whoAmI(asToken(cp))).status === 401,
      30_000,
    );
    // Not --dry-run here: a dry run replaces a token without a signature by a placeholder and then
    // reports the placeholder's id (mutateTokenDiscoveryForDryRun). Discovery without it is
    // preflight's (join phase preflight reads only), bounded to 15 s instead of 5 minutes.
    const config = joinConfigCopy(cp, cp.stack.workers[1].name, (join) => {
      join.timeouts = { discovery: "15s" };
    });
    const result = await kubeadmJoin(cp, config, ["phase", "preflight"]);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain(
      `couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID "${tokenId(cp)}"`,
    );
  }, 90_000);
});
