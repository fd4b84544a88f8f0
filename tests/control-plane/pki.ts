// The cluster CA, made as components/pki.ts makes it with @pulumi/tls: an RSA 2048 key in PKCS#1
// PEM (tls.PrivateKey's privateKeyPem), a self-signed certificate with subject CN=kubernetes,
// O="ha-k8s <cluster>", CA:TRUE, key usages cert signing, CRL signing, digital signature and key
// encipherment, a subject key id, valid 87600 h (kubeadm's own CA lifetime). Made with openssl.
// With it, the same way, the keys the control planes share: the etcd CA (CN=etcd-ca), the
// front-proxy CA (CN=front-proxy-ca) and the service-account key pair (its public key in PKIX PEM,
// tls.PrivateKey's publicKeyPem).

import * as fs from "fs";
import * as path from "path";
import { ControlPlaneKeys } from "../../render/kubeadm";
import { registerSecret, runOk } from "./exec";

export interface ClusterCa {
  readonly certFile: string;
  readonly keyFile: string;
  readonly certPem: string;
  /** Secret. */
  readonly keyPem: string;
  /** Made with it, as components/pki.ts makes them (secret keys). */
  readonly controlPlaneKeys: ControlPlaneKeys;
}

export const CA_VALIDITY_DAYS = 87600 / 24;

export async function createClusterCa(dir: string, clusterName: string): Promise<ClusterCa> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cluster = await createCa(dir, "ca", "kubernetes", clusterName);
  const etcd = await createCa(dir, "etcd-ca", "etcd-ca", clusterName);
  const frontProxy = await createCa(dir, "front-proxy-ca", "front-proxy-ca", clusterName);
  const saKeyFile = path.join(dir, "sa.key");
  await runOk("openssl", ["genrsa", "-traditional", "-out", saKeyFile, "2048"]);
  fs.chmodSync(saKeyFile, 0o600);
  const saPubFile = path.join(dir, "sa.pub");
  await runOk("openssl", ["rsa", "-in", saKeyFile, "-pubout", "-out", saPubFile]);
  return {
    ...cluster,
    controlPlaneKeys: {
      etcdCaCertPem: etcd.certPem,
      etcdCaKeyPem: etcd.keyPem,
      frontProxyCaCertPem: frontProxy.certPem,
      frontProxyCaKeyPem: frontProxy.keyPem,
      serviceAccountKeyPem: secretPem(saKeyFile),
      serviceAccountPublicKeyPem: fs.readFileSync(saPubFile, "utf8"),
    },
  };
}

/** A private key's PEM, every line of its body registered for redaction. */
function secretPem(file: string): string {
  const pem = fs.readFileSync(file, "utf8");
  // Any line of the key body would give it away.
  for (const line of pem.split("\n")) if (!line.startsWith("-----")) registerSecret(line);
  return pem;
}

async function createCa(
  dir: string,
  base: string,
  commonName: string,
  clusterName: string,
): Promise<Omit<ClusterCa, "controlPlaneKeys">> {
  const config = path.join(dir, `${base}.cnf`);
  fs.writeFileSync(
    config,
    [
      "[req]",
      "distinguished_name = dn",
      "x509_extensions = ca",
      "prompt = no",
      "[dn]",
      `O = ha-k8s ${clusterName}`,
      `CN = ${commonName}`,
      "[ca]",
      "basicConstraints = critical, CA:TRUE",
      "keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign, cRLSign",
      "subjectKeyIdentifier = hash",
      "",
    ].join("\n"),
  );
  const keyFile = path.join(dir, `${base}.key`);
  const certFile = path.join(dir, `${base}.crt`);
  await runOk("openssl", ["genrsa", "-traditional", "-out", keyFile, "2048"]);
  fs.chmodSync(keyFile, 0o600);
  await runOk("openssl", [
    "req", "-x509", "-new", "-config", config, "-key", keyFile, "-sha256",
    "-days", String(CA_VALIDITY_DAYS), "-out", certFile,
  ]); // prettier-ignore
  return { certFile, keyFile, certPem: fs.readFileSync(certFile, "utf8"), keyPem: secretPem(keyFile) };
}
