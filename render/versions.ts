// Every pinned version in one place. Bumping Kubernetes = editing SUPPORTED_KUBERNETES (and
// DEFAULT_KUBERNETES_MINOR); `npm run test:artifacts` then builds that kubeadm and checks that the
// rendered configs and the pause image still match it.

import { UPSTREAM } from "./mirrors";

export interface KubernetesRelease {
  /** Exact upstream patch release installed and passed to kubeadm (kubernetesVersion). */
  readonly patch: string;
  /** Debian package version on pkgs.k8s.io for kubelet, kubeadm and kubectl. */
  readonly debVersion: string;
  /** CRI-O stream; CRI-O follows the Kubernetes minor. */
  readonly crioStream: string;
  /**
   * The pause image kubeadm expects (`kubeadm config images list`). CRI-O uses its own
   * pause_image whatever the kubelet says, so it is set to this (kubernetes/kubernetes#115610).
   */
  readonly pauseImage: string;
  /**
   * The etcd release kubeadm runs for this version (its etcd image, `kubeadm config images list`):
   * the backups install etcdutl of exactly this release on the control planes.
   */
  readonly etcdVersion: string;
  /**
   * The CoreDNS release kubeadm deploys for this version (constants.CoreDNSVersion in
   * cmd/kubeadm/app/constants/constants.go; `kubeadm config images list`): the upgrade's
   * verification requires the coredns Deployment at exactly this tag (kube-proxy's is the patch).
   */
  readonly corednsVersion: string;
}

/** Upstream-supported minors in November 2026 (kubernetes.io/releases): 1.35, 1.36, 1.37. */
export const SUPPORTED_KUBERNETES: Readonly<Record<string, KubernetesRelease>> = {
  "1.35": {
    patch: "1.35.4",
    debVersion: "1.35.4-1.1",
    crioStream: "v1.35",
    pauseImage: "registry.k8s.io/pause:3.10.1",
    etcdVersion: "3.6.6",
    corednsVersion: "v1.13.1",
  },
  "1.36": {
    patch: "1.36.3",
    debVersion: "1.36.3-1.1",
    crioStream: "v1.36",
    pauseImage: "registry.k8s.io/pause:3.10.2",
    etcdVersion: "3.6.8",
    corednsVersion: "v1.14.2",
  },
  "1.37": {
    patch: "1.37.2",
    debVersion: "1.37.2-1.1",
    crioStream: "v1.37",
    pauseImage: "registry.k8s.io/pause:3.10.2",
    etcdVersion: "3.7.0",
    corednsVersion: "v1.14.6",
  },
};

export const DEFAULT_KUBERNETES_MINOR = "1.36";

export function kubernetesRelease(minor: string): KubernetesRelease {
  const release = SUPPORTED_KUBERNETES[minor];
  if (!release) {
    throw new Error(`Kubernetes ${minor} is not supported; supported: ${Object.keys(SUPPORTED_KUBERNETES).join(", ")}`);
  }
  return release;
}

/** The minor of a version: "v1.36.3", "1.36.3" and "1.36" are all "1.36". */
export function minorOfVersion(version: string): string {
  return version.replace(/^v/, "").split(".").slice(0, 2).join(".");
}

/**
 * A version as a full patch: a patch as it is ("v" dropped), a minor alone (the offline render's
 * --deployed-version 1.36) as its pinned patch, or <minor>.0 when that minor is no longer pinned.
 */
export function asPatchVersion(version: string): string {
  const plain = version.replace(/^v/, "");
  if (plain.split(".").length !== 2) return plain;
  return SUPPORTED_KUBERNETES[plain]?.patch ?? `${plain}.0`;
}

/** The package mirrors of a configuration (ClusterConfig); undefined: the upstream repositories. */
export interface PackageMirrors {
  readonly kubernetesPackageMirror?: string;
  readonly crioPackageMirror?: string;
}

/**
 * Package repositories (kubernetes.io blog 2023-08-15; cri-o/packaging README, commit b133393), at
 * their upstream or under a mirror's base URL with the same layout below it.
 */
export function kubernetesAptRepo(minor: string, mirrors: PackageMirrors = {}): string {
  return `${mirrors.kubernetesPackageMirror ?? UPSTREAM.kubernetesPackages}/core:/stable:/v${minor}/deb/`;
}

export function crioAptRepo(minor: string, mirrors: PackageMirrors = {}): string {
  const base = mirrors.crioPackageMirror ?? UPSTREAM.crioPackages;
  return `${base}/isv:/cri-o:/stable:/${kubernetesRelease(minor).crioStream}/deb/`;
}

/**
 * Every supported release as prepare-node.sh reads it (K8S_RELEASES): one line per minor,
 * "<minor> <patch> <deb version> <Kubernetes repository> <CRI-O repository>". A new machine picks
 * the line of the minor the cluster runs when it is prepared.
 */
export function releaseTable(mirrors: PackageMirrors = {}): string {
  return Object.entries(SUPPORTED_KUBERNETES)
    .map(([minor, r]) =>
      [minor, r.patch, r.debVersion, kubernetesAptRepo(minor, mirrors), crioAptRepo(minor, mirrors)].join(" "),
    )
    .join("\n");
}

/**
 * The pause image of a minor from an image repository: kubeadm names it <repository>/pause:<tag>
 * (GetPauseImage in cmd/kubeadm/app/images/images.go), so only the repository changes.
 */
export function pauseImageFor(minor: string, imageRepository: string = UPSTREAM.imageRepository): string {
  const { pauseImage } = kubernetesRelease(minor);
  return `${imageRepository}/${pauseImage.slice(pauseImage.lastIndexOf("/") + 1)}`;
}

/**
 * etcd's release downloads (github.com/etcd-io/etcd/releases, or etcdReleaseMirror laid out the
 * same): etcd-v<version>-linux-<arch>.tar.gz and the release's SHA256SUMS, both under this URL.
 */
export function etcdReleaseUrl(etcdVersion: string, mirror?: string): string {
  return `${mirror ?? UPSTREAM.etcdReleases}/v${etcdVersion}`;
}
