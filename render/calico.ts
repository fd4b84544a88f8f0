// Calico, installed the way its docs recommend: the Tigera operator (pinned release manifests)
// plus our own Installation resource, rendered here so its pod CIDR is the configured one and the
// artifact suite can check it. VXLAN encapsulation with BGP off: works on a GCP VPC without route
// programming and needs only UDP 4789 (plus Typha's TCP 5473) between nodes, which
// render/plan.ts opens. Pure.

import { stringify } from "yaml";
import { ClusterConfig } from "./config";

export const CALICO_VERSION = "v3.31.3";

/** Manifests of the pinned release (docs.tigera.io quickstart; CRDs ship in their own file). */
export function calicoManifestUrls(version: string = CALICO_VERSION): string[] {
  const base = `https://raw.githubusercontent.com/projectcalico/calico/${version}/manifests`;
  return [`${base}/operator-crds.yaml`, `${base}/tigera-operator.yaml`];
}

export function renderCalicoResources(config: Pick<ClusterConfig, "podCidr">): string {
  const installation = {
    apiVersion: "operator.tigera.io/v1",
    kind: "Installation",
    metadata: { name: "default" },
    spec: {
      calicoNetwork: {
        bgp: "Disabled",
        ipPools: [
          {
            name: "default-ipv4-ippool",
            cidr: config.podCidr,
            blockSize: 26,
            encapsulation: "VXLAN",
            natOutgoing: "Enabled",
            nodeSelector: "all()",
          },
        ],
        // The kubelet's node IP (our static address), not a guessed interface.
        nodeAddressAutodetectionV4: { kubernetes: "NodeInternalIP" },
      },
    },
  };
  const apiServer = { apiVersion: "operator.tigera.io/v1", kind: "APIServer", metadata: { name: "default" }, spec: {} };
  return [installation, apiServer].map((d) => stringify(d, { lineWidth: 0 })).join("---\n");
}
