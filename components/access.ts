// How machines are reached and what they may do: a per-stack SSH key (ED25519, a Pulumi secret),
// and a dedicated service account with no project roles, so a compromised node holds no GCP power.

import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { ClusterConfig } from "../render/config";

export interface ClusterAccessArgs {
  readonly config: ClusterConfig;
}

export class ClusterAccess extends pulumi.ComponentResource {
  readonly sshPublicKey: pulumi.Output<string>;
  /** OpenSSH private key; secret. */
  readonly sshPrivateKey: pulumi.Output<string>;
  readonly serviceAccountEmail: pulumi.Output<string>;

  constructor(name: string, args: ClusterAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ha-k8s:index:ClusterAccess", name, {}, opts);
    const key = new tls.PrivateKey(`${name}-ssh`, { algorithm: "ED25519" }, { parent: this });
    const account = new gcp.serviceaccount.Account(
      `${name}-nodes`,
      {
        // Service account ids are at most 30 characters.
        accountId: `${args.config.clusterName.slice(0, 24)}-nodes`,
        displayName: `ha-k8s ${args.config.clusterName} machines (no roles)`,
      },
      { parent: this },
    );
    this.sshPublicKey = key.publicKeyOpenssh;
    this.sshPrivateKey = pulumi.secret(key.privateKeyOpenssh);
    this.serviceAccountEmail = account.email;
    this.registerOutputs({ sshPublicKey: this.sshPublicKey, serviceAccountEmail: this.serviceAccountEmail });
  }
}
