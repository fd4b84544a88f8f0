// Where etcd snapshots go: a Cloud Storage bucket (created here unless backupBucket names one), and
// the nodes' service account's right to create objects in it, granted on that bucket only. The
// control planes upload with the metadata server's token (scripts/etcd-backup.sh); no key exists.
// Settings follow @pulumi/gcp 9.37.0's storage.Bucket (storage/bucket.d.ts) and Cloud Storage's docs:
// uniform bucket-level access (no object ACLs), public access prevention "enforced", versioning
// (an overwritten or deleted snapshot stays recoverable for a while), lifecycle rules.

import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { BACKUP_BUCKET_ROLE, NONCURRENT_VERSION_DAYS, createdBucketResourceName } from "../render/backup";
import { ClusterConfig } from "../render/config";

export interface ClusterBackupArgs {
  readonly config: ClusterConfig;
  /** The nodes' service account (components/access.ts). */
  readonly serviceAccountEmail: pulumi.Input<string>;
}

export class ClusterBackup extends pulumi.ComponentResource {
  /** The bucket's name (Pulumi's, with a random suffix, when the program creates it). */
  readonly bucketName: pulumi.Output<string>;

  constructor(name: string, args: ClusterBackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ha-k8s:index:ClusterBackup", name, {}, opts);
    const { config } = args;
    let bucketName: pulumi.Output<string>;
    if (config.backupBucket !== "") {
      // An existing bucket: its settings are its owner's; the program only grants the upload right.
      bucketName = pulumi.output(config.backupBucket);
    } else {
      const bucket = new gcp.storage.Bucket(
        createdBucketResourceName(config.clusterName),
        {
          // No name: Pulumi names it <resource name>-<random suffix>, so a stack rebuilt after
          // `pulumi destroy` (which keeps this bucket) creates a new one instead of colliding.
          location: config.region.toUpperCase(),
          storageClass: "STANDARD",
          uniformBucketLevelAccess: true,
          publicAccessPrevention: "enforced",
          versioning: { enabled: true },
          lifecycleRules: [
            // Snapshots older than backupRetentionDays are deleted (they become noncurrent versions)...
            { action: { type: "Delete" }, condition: { age: config.backupRetentionDays, withState: "LIVE" } },
            // ...and noncurrent versions go for good a few days later.
            {
              action: { type: "Delete" },
              condition: { daysSinceNoncurrentTime: NONCURRENT_VERSION_DAYS, withState: "ARCHIVED" },
            },
          ],
          labels: { "ha-k8s-cluster": config.clusterName, "ha-k8s-purpose": "etcd-backups" },
        },
        // The snapshots are what a rebuilt cluster is restored from: `pulumi destroy` leaves the
        // bucket (and its lifecycle empties it), it never deletes them with the cluster.
        { parent: this, retainOnDelete: true },
      );
      bucketName = bucket.name;
    }
    // A member binding on this bucket only: nothing project-wide, no other role for the account.
    new gcp.storage.BucketIAMMember(
      `${name}-nodes-create-objects`,
      {
        bucket: bucketName,
        role: BACKUP_BUCKET_ROLE,
        member: pulumi.interpolate`serviceAccount:${args.serviceAccountEmail}`,
      },
      { parent: this },
    );
    this.bucketName = bucketName;
    this.registerOutputs({ bucketName: this.bucketName });
  }
}
