// Calico, installed the way its docs recommend: the Tigera operator (pinned release manifests)
// plus our own Installation resource, rendered here so its pod CIDR is the configured one and the
// artifact suite can check it. VXLAN encapsulation with BGP off: works on a GCP VPC without route
// programming and needs only UDP 4789 (plus Typha's TCP 5473) between nodes, which
// render/plan.ts opens. Pure.

import { stringify } from "yaml";
import { ClusterConfig } from "./config";
import { UPSTREAM } from "./mirrors";

/**
 * Calico 3.33 is tested against Kubernetes 1.35, 1.36 and 1.37, every supported minor
 * (tigera/docs calico_versioned_docs/version-3.33/_includes/partials/_system-requirements.mdx);
 * 3.31 stops at 1.35. v3.33.1 is its latest patch (GitHub release, November 2026).
 */
export const CALICO_VERSION = "v3.33.1";
/**
 * Calico's images come from quay.io, not Docker Hub: anonymous docker.io pulls are limited to
 * 100 per 6 h per IPv4 address, and every node pulls through the same Cloud NAT addresses.
 * Installation.spec.registry must end with "/" (operator.tigera.io/v1 Installation API); the
 * operator's own image is quay.io/tigera/operator in tigera-operator.yaml.
 */
export const CALICO_REGISTRY = "quay.io/";

/**
 * Manifests of the pinned release: the v1 CRDs (operator-crds.yaml: crd.projectcalico.org/v1 and
 * operator.tigera.io/v1), then the operator. Applying the v1 CRDs first selects the aggregation API
 * server mode (Calico 3.33 release notes: new installs otherwise default to native v3 CRDs, which on
 * Kubernetes 1.35 need the MutatingAdmissionPolicy feature gate); it works on every supported minor
 * and is the mode the APIServer resource below belongs to.
 */
export function calicoManifestUrls(mirror?: string, version: string = CALICO_VERSION): string[] {
  // calicoManifestMirror mirrors the repository's raw files: the same <version>/manifests/ below it.
  const base = `${mirror ?? UPSTREAM.calicoManifests}/${version}/manifests`;
  return [`${base}/operator-crds.yaml`, `${base}/tigera-operator.yaml`];
}

export function renderCalicoResources(config: Pick<ClusterConfig, "podCidr">): string {
  const installation = {
    apiVersion: "operator.tigera.io/v1",
    kind: "Installation",
    metadata: { name: "default" },
    spec: {
      registry: CALICO_REGISTRY,
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
