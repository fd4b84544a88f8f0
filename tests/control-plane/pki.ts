// The cluster CA, made as components/pki.ts makes it with @pulumi/tls: an RSA 2048 key in PKCS#1
// PEM (tls.PrivateKey's privateKeyPem), a self-signed certificate with subject CN=kubernetes,
// O="ha-k8s <cluster>", CA:TRUE, key usages cert signing, CRL signing, digital signature and key
// encipherment, a subject key id, valid 87600 h (kubeadm's own CA lifetime). Made with openssl.

import * as fs from "fs";
import * as path from "path";
import { registerSecret, runOk } from "./exec";

export interface ClusterCa {
  readonly certFile: string;
  readonly keyFile: string;
  readonly certPem: string;
  /** Secret. */
  readonly keyPem: string;
}

export const CA_VALIDITY_DAYS = 87600 / 24;

export async function createClusterCa(dir: string, clusterName: string): Promise<ClusterCa> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const config = path.join(dir, "ca.cnf");
  fs.writeFileSync(
    config,
    [
      "[req]",
      "distinguished_name = dn",
      "x509_extensions = ca",
      "prompt = no",
      "[dn]",
      `O = ha-k8s ${clusterName}`,
      "CN = kubernetes",
      "[ca]",
      "basicConstraints = critical, CA:TRUE",
      "keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign, cRLSign",
      "subjectKeyIdentifier = hash",
      "",
    ].join("\n"),
  );
  const keyFile = path.join(dir, "ca.key");
  const certFile = path.join(dir, "ca.crt");
  await runOk("openssl", ["genrsa", "-traditional", "-out", keyFile, "2048"]);
  fs.chmodSync(keyFile, 0o600);
  await runOk("openssl", [
    "req", "-x509", "-new", "-config", config, "-key", keyFile, "-sha256",
    "-days", String(CA_VALIDITY_DAYS), "-out", certFile,
  ]); // prettier-ignore
  const keyPem = fs.readFileSync(keyFile, "utf8");
  // Any line of the key body would give it away.
  for (const line of keyPem.split("\n")) if (!line.startsWith("-----")) registerSecret(line);
  return { certFile, keyFile, certPem: fs.readFileSync(certFile, "utf8"), keyPem };
}
