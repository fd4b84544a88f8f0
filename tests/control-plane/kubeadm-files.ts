// The rendered kubeadm configurations as one test "machine" sees them, and the component flags
// kubeadm writes into its static Pod manifests.
//
// A machine here is a directory standing in for its root file system (the scripts' HA_K8S_ROOT).
// kubeadm has no such prefix, but every path it writes certificates to or reads them from is
// ClusterConfiguration.certificatesDir, so a machine's copy of a configuration sets that to the
// machine's /etc/kubernetes/pki. Nothing else changes.

import { parseAllDocuments, stringify } from "yaml";

type Doc = Record<string, unknown> & { kind?: string };

function documents(text: string): Doc[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length > 0) throw new Error(`bad YAML: ${d.errors[0].message}`);
    return d.toJS() as Doc;
  });
}

function render(docs: readonly Doc[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join("---\n");
}

function find(docs: readonly Doc[], kind: string): Doc {
  const doc = docs.find((d) => d.kind === kind);
  if (!doc) throw new Error(`no ${kind} in the configuration`);
  return doc;
}

/** The rendered configuration with the certificates in the machine's /etc/kubernetes/pki. */
export function machineConfig(rendered: string, pkiDir: string): string {
  const docs = documents(rendered);
  find(docs, "ClusterConfiguration").certificatesDir = pkiDir;
  return render(docs);
}

/**
 * What `kubeadm join --control-plane` builds for itself from the cluster's ClusterConfiguration and
 * its JoinConfiguration (fetchInitConfigurationFromJoinConfiguration in kubeadm's cmd/join.go): an
 * InitConfiguration with the joining node's registration and local API endpoint. kubeadm's init
 * phases then make that node's certificates and kubeconfigs exactly as its join would.
 */
export function joiningControlPlaneConfig(initRendered: string, joinRendered: string, pkiDir: string): string {
  const init = documents(initRendered);
  const join = find(documents(joinRendered), "JoinConfiguration");
  const controlPlane = join.controlPlane as { localAPIEndpoint?: unknown } | undefined;
  if (!controlPlane?.localAPIEndpoint) throw new Error("the JoinConfiguration is not a control plane's");
  const initConfiguration: Doc = {
    apiVersion: join.apiVersion,
    kind: "InitConfiguration",
    localAPIEndpoint: controlPlane.localAPIEndpoint,
    nodeRegistration: join.nodeRegistration,
  };
  const cluster = find(init, "ClusterConfiguration");
  cluster.certificatesDir = pkiDir;
  return render([initConfiguration, cluster]);
}

/** A document of a rendered configuration, e.g. the JoinConfiguration. */
export function configDocument(rendered: string, kind: string): Doc {
  return find(documents(rendered), kind);
}

/** The command of a static Pod manifest kubeadm wrote: the binary name and its --flag=value list. */
export function manifestFlags(manifest: string): Map<string, string> {
  const pod = documents(manifest)[0] as { spec?: { containers?: { command?: string[] }[] } };
  const command = pod.spec?.containers?.[0]?.command;
  if (!command) throw new Error("the manifest has no container command");
  const flags = new Map<string, string>();
  for (const arg of command.slice(1)) {
    const match = /^--([^=]+)=(.*)$/.exec(arg);
    if (!match) throw new Error(`unexpected argument ${arg} in the manifest`);
    flags.set(match[1], match[2]);
  }
  return flags;
}

export function flagArgs(flags: ReadonlyMap<string, string>): string[] {
  return [...flags].map(([name, value]) => `--${name}=${value}`);
}
