// CRI-O's configuration. The drop-in for /etc/crio/crio.conf.d/: CRI-O uses its own pause_image
// whatever the kubelet is told, so it is set to the image kubeadm expects, from imageRepository when
// one is set (kubernetes/kubernetes#115610, cri-o/cri-o#6985); the cgroup driver must match the
// kubelet's (systemd). And, with registryMirror, a registries.conf drop-in
// (containers-registries.conf.d(5), read by CRI-O through containers/image) that pulls docker.io,
// registry.k8s.io and quay.io images through the mirror first, falling back to each registry.
// Pure.

import { pauseImageFor } from "./versions";

export function renderCrioDropIn(kubernetesMinor: string, imageRepository?: string): string {
  return [
    "# Rendered by ha-k8s (render/crio.ts).",
    "[crio.runtime]",
    'cgroup_manager = "systemd"',
    "",
    "[crio.image]",
    `pause_image = "${pauseImageFor(kubernetesMinor, imageRepository)}"`,
    "",
  ].join("\n");
}

export const REGISTRIES_DROP_IN_PATH = "/etc/containers/registries.conf.d/50-ha-k8s-mirror.conf";

/**
 * The registries registryMirror covers: Docker Hub (workloads), registry.k8s.io (Kubernetes' own
 * images, unless imageRepository points elsewhere) and quay.io (Calico, render/calico.ts).
 */
export const MIRRORED_REGISTRIES = ["docker.io", "registry.k8s.io", "quay.io"] as const;

/**
 * containers-registries.conf(5) v2: one [[registry]] per mirrored registry, prefix and location the
 * registry itself, with `mirror` as its [[registry.mirror]]. A pull tries the mirrors in order, then
 * the location, so an image the mirror does not have still comes from its registry. The image's path
 * below the registry is kept (registry.k8s.io/pause:3.10.2 is tried as <mirror>/pause:3.10.2 first).
 */
export function renderRegistriesDropIn(mirror: string): string {
  return [
    "# Rendered by ha-k8s (render/crio.ts): these registries through a mirror first, themselves as fallback.",
    ...MIRRORED_REGISTRIES.flatMap((registry) => [
      "[[registry]]",
      `prefix = "${registry}"`,
      `location = "${registry}"`,
      "",
      "[[registry.mirror]]",
      `location = "${mirror}"`,
      "",
    ]),
  ].join("\n");
}
