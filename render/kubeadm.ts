// kubeadm configuration files (API kubeadm.k8s.io/v1beta4; v1beta3 is deprecated since 1.31) for
// `kubeadm init` and `kubeadm join`, rendered from the plan. Config files instead of long flag
// lists: `--config` cannot be combined with `--certificate-key`, so the key goes in the file.
// Pure: no Pulumi, no I/O. `npm run test:artifacts` validates every output with the real kubeadm.

import { stringify } from "yaml";
import { ClusterConfig } from "./config";
import { API_PORT, Plan, PlannedNode } from "./plan";

export const KUBEADM_API = "kubeadm.k8s.io/v1beta4";
export const CRI_SOCKET = "unix:///var/run/crio/crio.sock";
/**
 * How long the join credentials (bootstrap token, uploaded control-plane certificates) live unless
 * the verification at the end of a deployment revokes them first: long enough that a join retried
 * by a later `pulumi up` (Pulumi re-runs only the failed join, not the refresh before it) finds
 * them; bounded, so an abandoned failed deployment does not leave them forever.
 */
export const JOIN_CREDENTIALS_TTL_HOURS = 168;

/** Values generated at deploy time (Pulumi secrets); the offline render uses placeholders. */
export interface JoinSecrets {
  /** Bootstrap token "[a-z0-9]{6}.[a-z0-9]{16}". */
  readonly bootstrapToken: string;
  /** 32 bytes hex: encrypts the control-plane certificates uploaded to the kubeadm-certs Secret. */
  readonly certificateKey: string;
  /** "sha256:<hex>" of the cluster CA's public key, so joins verify whom they talk to. */
  readonly caCertHash: string;
}

/**
 * The keys every control plane shares besides the cluster CA: the etcd CA, the front-proxy CA and
 * the service-account signing key pair (kubeadm's "shared certificates", copycerts.go). Pulumi makes
 * them (components/pki.ts), as Cluster API keeps them in Secrets of the management cluster
 * (<cluster>-ca, -etcd, -proxy, -sa: cluster-api.sigs.k8s.io/tasks/certs/using-custom-certificates), so a rebuilt first control plane can join with them although no machine that
 * holds them can run its steps (kubeadm-init.sh). kubeadm init keeps keys it finds in its pki.
 */
export interface ControlPlaneKeys {
  readonly etcdCaCertPem: string;
  /** Secret. */
  readonly etcdCaKeyPem: string;
  readonly frontProxyCaCertPem: string;
  /** Secret. */
  readonly frontProxyCaKeyPem: string;
  /** Secret. */
  readonly serviceAccountKeyPem: string;
  readonly serviceAccountPublicKeyPem: string;
}

/** The load balancer's public address, known only once GCP has reserved it. */
export interface EndpointAddresses {
  readonly externalIp: string;
}

function nodeRegistration(node: PlannedNode) {
  return {
    name: node.name,
    criSocket: CRI_SOCKET,
    imagePullPolicy: "IfNotPresent",
    // Pin the kubelet to the node's static address instead of guessing a NIC (kubeadm#1987).
    kubeletExtraArgs: [{ name: "node-ip", value: node.internalIp }],
  };
}

const endpointOf = (plan: Plan) => `${plan.endpoint.internalIp}:${plan.endpoint.port}`;

function yamlDocuments(documents: readonly object[]): string {
  return documents.map((d) => stringify(d, { lineWidth: 0 })).join("---\n");
}

/**
 * InitConfiguration + ClusterConfiguration + KubeletConfiguration for the first control plane.
 * certSANs list both load balancer addresses from the start: adding one later means regenerating
 * the API server certificate on every control plane (kubeadm#1447).
 */
export function renderInitConfiguration(
  config: ClusterConfig,
  plan: Plan,
  node: PlannedNode,
  secrets: JoinSecrets,
  addresses: EndpointAddresses,
): string {
  // The patch the cluster was created with, so neither an upgrade nor a moved pin changes what
  // init was given (init does not run again on a running cluster; upgrades go through kubeadm
  // upgrade; refresh-credentials.sh gives upload-certs kubeadm's own version).
  const kubernetesVersion = `v${plan.cluster.createdWithVersion}`;
  return yamlDocuments([
    {
      apiVersion: KUBEADM_API,
      kind: "InitConfiguration",
      bootstrapTokens: [
        {
          token: secrets.bootstrapToken,
          description: "ha-k8s bootstrap token; refreshed before every join",
          ttl: `${JOIN_CREDENTIALS_TTL_HOURS}h0m0s`,
          usages: ["signing", "authentication"],
          groups: ["system:bootstrappers:kubeadm:default-node-token"],
        },
      ],
      certificateKey: secrets.certificateKey,
      localAPIEndpoint: { advertiseAddress: node.internalIp, bindPort: API_PORT },
      nodeRegistration: nodeRegistration(node),
    },
    {
      apiVersion: KUBEADM_API,
      kind: "ClusterConfiguration",
      clusterName: config.clusterName,
      kubernetesVersion,
      // Unset: kubeadm's default, registry.k8s.io. Set: every image kubeadm runs comes from there,
      // <repository>/<name>:<tag>, CoreDNS included (images.go adds the extra /coredns for the
      // default registry only). Joins and upgrades read it back from the kubeadm-config ConfigMap.
      ...(config.imageRepository ? { imageRepository: config.imageRepository } : {}),
      controlPlaneEndpoint: endpointOf(plan),
      networking: {
        podSubnet: config.podCidr,
        serviceSubnet: config.serviceCidr,
        dnsDomain: "cluster.local",
      },
      apiServer: {
        certSANs: [plan.endpoint.internalIp, addresses.externalIp],
      },
      etcd: { local: { dataDir: "/var/lib/etcd" } },
    },
    {
      apiVersion: "kubelet.config.k8s.io/v1beta1",
      kind: "KubeletConfiguration",
      cgroupDriver: "systemd",
    },
  ]);
}

/**
 * JoinConfiguration for a control plane (with its own API endpoint and the certificate key) or a
 * worker. `keysOnDisk`: a control plane that finds the shared keys already in its pki (a rebuilt
 * first control plane, kubeadm-init.sh) joins without the certificate key, so kubeadm does not
 * download them (its download-certs phase runs only with a certificate key).
 */
export function renderJoinConfiguration(
  plan: Plan,
  node: PlannedNode,
  secrets: JoinSecrets,
  options: { keysOnDisk?: boolean } = {},
): string {
  const join: Record<string, unknown> = {
    apiVersion: KUBEADM_API,
    kind: "JoinConfiguration",
    discovery: {
      bootstrapToken: {
        apiServerEndpoint: endpointOf(plan),
        token: secrets.bootstrapToken,
        caCertHashes: [secrets.caCertHash],
      },
    },
    nodeRegistration: nodeRegistration(node),
  };
  if (node.role === "control-plane") {
    join.controlPlane = {
      localAPIEndpoint: { advertiseAddress: node.internalIp, bindPort: API_PORT },
      ...(options.keysOnDisk ? {} : { certificateKey: secrets.certificateKey }),
    };
  } else if (node.role !== "worker") {
    throw new Error(`${node.name} is a ${node.role}; only control planes and workers join`);
  }
  return yamlDocuments([join]);
}
