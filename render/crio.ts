// CRI-O's configuration. The drop-in for /etc/crio/crio.conf.d/: CRI-O uses its own pause_image
// whatever the kubelet is told, so it is set to the tag kubeadm expects (kubernetes/kubernetes#115610,
// cri-o/cri-o#6985); the cgroup driver must match the kubelet's (systemd). And, with registryMirror,
// a registries.conf drop-in (containers-registries.conf.d(5), read by CRI-O through
// containers/image) that pulls docker.io images through the mirror, falling back to docker.io.
// Pure.

import { kubernetesRelease } from "./versions";

export function renderCrioDropIn(kubernetesMinor: string): string {
  const { pauseImage } = kubernetesRelease(kubernetesMinor);
  return [
    "# Rendered by ha-k8s (render/crio.ts).",
    "[crio.runtime]",
    'cgroup_manager = "systemd"',
    "",
    "[crio.image]",
    `pause_image = "${pauseImage}"`,
    "",
  ].join("\n");
}

export const REGISTRIES_DROP_IN_PATH = "/etc/containers/registries.conf.d/50-ha-k8s-mirror.conf";

/** containers-registries.conf(5) v2: docker.io images pulled through `mirror` first. */
export function renderRegistriesDropIn(mirror: string): string {
  return [
    "# Rendered by ha-k8s (render/crio.ts): docker.io images through a mirror, docker.io as fallback.",
    "[[registry]]",
    'prefix = "docker.io"',
    'location = "docker.io"',
    "",
    "[[registry.mirror]]",
    `location = "${mirror}"`,
    "",
  ].join("\n");
}
