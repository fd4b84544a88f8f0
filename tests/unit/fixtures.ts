import { createCipheriv, pbkdf2Sync, randomBytes } from "crypto";
import { SEALED_OUTPUT_ITERATIONS, SEALED_OUTPUT_PREFIX } from "../../render/secrets";
// Fixed inputs shared by the unit tests.

import * as fs from "fs";
import * as path from "path";

/** A real self-signed certificate (openssl, EC P-256) so caCertHash runs on real input. */
export const TEST_CA_CERT = `-----BEGIN CERTIFICATE-----
MIIBgDCCASWgAwIBAgIUcX81bcQmOqsiiElsZ8cGVQanBTIwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAeFw0yNjExMjQwOTE5NTZaFw0zNjExMjEw
OTE5NTZaMBUxEzARBgNVBAMMCmt1YmVybmV0ZXMwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASXzuVqbeF65twhxz4OjaTi0exRxAQ3Eh0tP+pqLtKq/VKhdK9eo8g7
sEIqya9TAFvqQ+CgCWiiIxARc6Ijw/BKo1MwUTAdBgNVHQ4EFgQUH/QGibs898Tg
J1abWtp+qi8yFq8wHwYDVR0jBBgwFoAUH/QGibs898TgJ1abWtp+qi8yFq8wDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAr1oqzC+lbknfY0NBJHFp
bgAjjMJRvNUJbEw1GG5i6NICIQDvO+GqCnFL2jA0hxq1onOd31Qehomq7j5YQTwh
mbFMwA==
-----END CERTIFICATE-----
`;
/** `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum` of TEST_CA_CERT. */
export const TEST_CA_CERT_HASH = "sha256:7c55f89c822bb72287bbc995eb3d379b541ab8913f1cacae9d03b522bc4b64dd";

/**
 * What scripts/kubeconfig.sh prints for `plain`: openssl enc's format (render/secrets.ts
 * openSealedOutput), made here with node:crypto for the mocks; tests/unit/render.test.ts checks the
 * real openssl's output opens the same way.
 */
export function sealLikeKubeconfigSh(plain: string, outputKey: string, salt = randomBytes(8)): string {
  const derived = pbkdf2Sync(outputKey, salt, SEALED_OUTPUT_ITERATIONS, 48, "sha256");
  const cipher = createCipheriv("aes-256-cbc", derived.subarray(0, 32), derived.subarray(32, 48));
  const body = Buffer.concat([Buffer.from("Salted__"), salt, cipher.update(plain, "utf8"), cipher.final()]);
  return `${SEALED_OUTPUT_PREFIX}${body.toString("base64")}\n`;
}

export const FAKE_ADMIN_CONF = [
  "apiVersion: v1",
  "clusters:",
  "- cluster:",
  "    certificate-authority-data: LS0t",
  "    server: https://10.10.0.2:6443",
  "  name: kubernetes",
  "kind: Config",
  "",
].join("\n");

/**
 * A real ASCII-armored OpenPGP public key (gpg 2.2, ed25519, generated for these tests; its private
 * half was never kept), as a repository's Release.key looks. Shared with the artifact suite and bats.
 */
export const TEST_OPENPGP_KEY = fs.readFileSync(
  path.join(__dirname, "../artifacts/fixtures/openpgp-public-key.asc"),
  "utf8",
);
