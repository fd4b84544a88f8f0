// Where the machines fetch what they install, and the mirrors a cluster with restricted egress
// replaces them with (kubernetesPackageMirror, crioPackageMirror, calicoManifestMirror,
// etcdReleaseMirror, imageRepository; their signing keys kubernetesPackageKey, crioPackageKey). The rules for those
// values live here, render/config.ts reports them. Pure.

/** The upstream each mirror key stands in for, when it is empty. */
export const UPSTREAM = {
  /** pkgs.k8s.io: kubelet, kubeadm, kubectl (kubernetes.io blog 2023-08-15). */
  kubernetesPackages: "https://pkgs.k8s.io",
  /** CRI-O's packages since 1.28 (cri-o/packaging README): isv:/cri-o:/stable:/<stream>/deb/ below it. */
  crioPackages: "https://download.opensuse.org/repositories",
  /** Calico's release manifests: <version>/manifests/ below it. */
  calicoManifests: "https://raw.githubusercontent.com/projectcalico/calico",
  /**
   * etcd's releases (github.com/etcd-io/etcd/releases): v<version>/etcd-v<version>-linux-<arch>.tar.gz
   * and v<version>/SHA256SUMS below it; the backups install etcdutl from there.
   */
  etcdReleases: "https://github.com/etcd-io/etcd/releases/download",
  /** kubeadm's default imageRepository (DefaultImageRepository, kubeadm's API v1beta4). */
  imageRepository: "registry.k8s.io",
} as const;

/** What a mirror URL may look like, for the error messages. */
export const MIRROR_URL_FORM =
  "http:// or https:// followed by host[:port][/path], without query, fragment, credentials or whitespace";

/**
 * Why a mirror base URL cannot be used, or undefined when it can. The URL ends up in apt's sources
 * list ("deb [signed-by=...] <url> /"), in a whitespace-separated table prepare-node.sh reads and in
 * `kubectl apply -f <url>`, so it must be one plain http(s) URL: no whitespace, no characters a URL
 * cannot hold, nothing after the path (a query or fragment would end up in the middle of every URL
 * built from it), and no credentials (the steps that use it are logged in plain text).
 */
export function mirrorUrlProblem(value: string): string | undefined {
  if (/\s/.test(value)) return "contains whitespace";
  const outside = /[^A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]/.exec(value);
  if (outside) return `contains ${JSON.stringify(outside[0])}, which a URL cannot hold`;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value)?.[1];
  if (scheme === undefined) return "does not start with http:// or https://";
  if (scheme !== "http" && scheme !== "https") return `has the scheme ${scheme}://`;
  if (value.includes("?")) return "has a query (?...)";
  if (value.includes("#")) return "has a fragment (#...)";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "is not a URL";
  }
  if (/^https?:\/\/[/:@]/.test(value) || url.hostname === "") return "has no host";
  if (url.username !== "" || url.password !== "") {
    return "carries credentials (user:password@), which the logged steps would show in plain text; give the VPC read access without them";
  }
  return undefined;
}

/** A mirror base URL as the renderers use it: without its trailing "/" (they add their own). */
export function normaliseMirrorUrl(value: string): string {
  return value.replace(/\/+$/, "");
}

const BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const END = "-----END PGP PUBLIC KEY BLOCK-----";
/** What a repository key must look like, for the error messages. */
export const ARMORED_KEY_FORM = `one ASCII-armored OpenPGP public key block, from "${BEGIN}" to "${END}"`;

/** The CRC-24 of OpenPGP's ASCII armor (RFC 4880 section 6.1). */
function crc24(data: Uint8Array): number {
  let crc = 0xb704ce;
  for (const byte of data) {
    crc ^= byte << 16;
    for (let i = 0; i < 8; i++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

/** The tag of the first OpenPGP packet (RFC 4880 section 4.2: old and new packet formats). */
function firstPacketTag(data: Uint8Array): number | undefined {
  const header = data[0];
  if (header === undefined || (header & 0x80) === 0) return undefined;
  return header & 0x40 ? header & 0x3f : (header >> 2) & 0x0f;
}

/**
 * A repository signing key read from its armor, or why it cannot be used: it must be one
 * ASCII-armored public key block (what `curl <repository>Release.key` returns) whose first packet is
 * a public key (tag 6, not a secret key's 5) and whose armor checksum, when it has one, matches, so a
 * block damaged while being copied is refused here and not by apt on every machine.
 */
function readArmoredKey(text: string): { data: Buffer } | { problem: string } {
  const lines = text
    .replace(/\r\n/g, "\n")
    .trim()
    .split("\n")
    .map((line) => line.trim());
  if (lines[0] === "-----BEGIN PGP PRIVATE KEY BLOCK-----")
    return { problem: "is a private key block; give the public key" };
  if (lines[0] !== BEGIN) return { problem: `does not start with "${BEGIN}"` };
  const end = lines.indexOf(END);
  if (end < 0) return { problem: `has no "${END}" line` };
  if (end !== lines.length - 1) return { problem: `has more after its "${END}" line (one block only)` };
  if (/[^\x20-\x7e]/.test(lines.join(""))) return { problem: "holds characters that are not printable ASCII" };
  // Armor headers ("Comment: ..."), the blank line after them, then base64 and an optional "=CRC".
  let i = 1;
  while (i < end && /^[A-Za-z][A-Za-z0-9-]*: /.test(lines[i])) i++;
  if (lines[i] === "") i++;
  const body = lines.slice(i, end);
  const checksum = body.length > 0 && /^=[A-Za-z0-9+/]{4}$/.test(body[body.length - 1]) ? body.pop() : undefined;
  const base64 = body.join("");
  if (base64 === "") return { problem: "holds no key data" };
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64) || base64.length % 4 !== 0) {
    return { problem: "holds a line that is not base64" };
  }
  const data = Buffer.from(base64, "base64");
  const tag = firstPacketTag(data);
  if (tag === 5) return { problem: "holds a secret key; give the public key" };
  if (tag !== 6) return { problem: "does not hold an OpenPGP public key" };
  if (checksum !== undefined && Buffer.from(checksum.slice(1), "base64").readUIntBE(0, 3) !== crc24(data)) {
    return { problem: "fails its armor checksum (damaged when copied?)" };
  }
  return { data };
}

/** Why a repository signing key cannot be used, or undefined when it can (see readArmoredKey). */
export function armoredKeyProblem(text: string): string | undefined {
  const key = readArmoredKey(text);
  return "problem" in key ? key.problem : undefined;
}

/**
 * A usable key as it is staged: re-armored the way GnuPG writes it (no headers, 64 characters a line,
 * the checksum line), whatever line ends or checksum it came with. `gpg --dearmor` of GnuPG 2.2 reads
 * a block without its checksum line past the data into the END line, and fails.
 */
export function normaliseArmoredKey(text: string): string {
  const key = readArmoredKey(text);
  if ("problem" in key) throw new Error(`not a usable key: it ${key.problem}`);
  const crc = Buffer.from([crc24(key.data) >> 16, (crc24(key.data) >> 8) & 0xff, crc24(key.data) & 0xff]);
  const lines = key.data.toString("base64").match(/.{1,64}/g)!;
  return [BEGIN, "", ...lines, `=${crc.toString("base64")}`, END, ""].join("\n");
}

/** A long value shortened for a message: its first line, at most 60 characters. */
export function abbreviate(value: string): string {
  const first = value.trim().split(/\r?\n/)[0];
  return first.length > 60 || first !== value.trim() ? `${first.slice(0, 60)}…` : first;
}
