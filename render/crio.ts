// CRI-O drop-in for /etc/crio/crio.conf.d/. CRI-O uses its own pause_image whatever the kubelet is
// told, so it is set to the tag kubeadm expects (kubernetes/kubernetes#115610, cri-o/cri-o#6985);
// the cgroup driver must match the kubelet's (systemd). Pure.

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
