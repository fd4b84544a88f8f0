// The real program (index.ts) under Pulumi mocks: the snapshot bucket, the one IAM grant, the
// control planes' storage scope, and the bucket name reaching the machines and the stack outputs.

import { ProgramRun, RecordedResource, runProgram } from "./harness";
import { readStackFile } from "../../render/project";

const BUCKET = "gcp:storage/bucket:Bucket";
const MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember";
const STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write";
const devValues = readStackFile("dev") as Record<string, string | number>;

let dev: ProgramRun;
beforeAll(async () => {
  dev = await runProgram(devValues);
});

const accountEmail = (run: ProgramRun) =>
  `${run.ofType("gcp:serviceaccount/account:Account")[0].inputs.accountId}@project.iam.gserviceaccount.com`;

describe("the bucket the program creates", () => {
  test("uniform access, public access prevention enforced, versioning, in the cluster's region; kept by pulumi destroy", () => {
    const buckets = dev.ofType(BUCKET);
    expect(buckets).toHaveLength(1);
    const [bucket] = buckets;
    expect(bucket.name).toBe("ha-k8s-dev-etcd-backups");
    expect(bucket.inputs.name).toBeUndefined(); // Pulumi adds a random suffix
    expect(bucket.inputs).toMatchObject({
      location: "EUROPE-WEST1",
      uniformBucketLevelAccess: true,
      publicAccessPrevention: "enforced",
      versioning: { enabled: true },
      labels: { "ha-k8s-cluster": "ha-k8s-dev", "ha-k8s-purpose": "etcd-backups" },
    });
    expect(bucket.retainOnDelete).toBe(true);
    expect(bucket.parent).toBe("ha-k8s-dev-backup");
  });

  test("the lifecycle deletes snapshots older than backupRetentionDays, and deleted versions a week later", async () => {
    expect(dev.ofType(BUCKET)[0].inputs.lifecycleRules).toEqual([
      { action: { type: "Delete" }, condition: { age: 14, withState: "LIVE" } },
      { action: { type: "Delete" }, condition: { daysSinceNoncurrentTime: 7, withState: "ARCHIVED" } },
    ]);
    const month = await runProgram({ ...devValues, backupRetentionDays: 30 });
    expect((month.ofType(BUCKET)[0].inputs.lifecycleRules as { condition: { age?: number } }[])[0].condition.age).toBe(
      30,
    );
  });

  test("the nodes' service account may create objects in that bucket, and that is the only grant there is", () => {
    const grants = dev.resources.filter((r) => /iam|policy|binding/i.test(r.type));
    expect(grants.map((r) => r.type)).toEqual([MEMBER]);
    expect(grants[0].inputs).toEqual({
      bucket: "ha-k8s-dev-etcd-backups-0a1b2c3",
      role: "roles/storage.objectCreator",
      member: `serviceAccount:${accountEmail(dev)}`,
    });
    // Nothing project-wide (no gcp:projects/... resources) and the account itself carries no roles.
    expect(dev.resources.filter((r) => r.type.startsWith("gcp:projects/"))).toEqual([]);
    expect(dev.ofType("gcp:serviceaccount/account:Account")[0].inputs).not.toHaveProperty("roles");
  });

  test("the bucket's name is a plain stack output and reaches the control planes' backup steps", () => {
    expect(dev.outputs.backupBucket).toBe("ha-k8s-dev-etcd-backups-0a1b2c3");
    expect(dev.secretOutputs).not.toContain("backupBucket");
    for (const step of ["ha-k8s-dev-cp-1-backup", "ha-k8s-dev-cp-3-backup", "cluster-snapshot"]) {
      expect([step, dev.byName(step).inputs.stdin]).toEqual([
        step,
        expect.stringMatching(/^BACKUP_BUCKET='?ha-k8s-dev-etcd-backups-0a1b2c3'?$/m),
      ]);
    }
  });
});

describe("an existing bucket (backupBucket)", () => {
  let existing: ProgramRun;
  beforeAll(async () => {
    existing = await runProgram({ ...devValues, backupBucket: "team-etcd-backups" });
  });

  test("no bucket is created; the grant is on the named bucket only", () => {
    expect(existing.ofType(BUCKET)).toEqual([]);
    const grants = existing.resources.filter((r) => /iam|policy|binding/i.test(r.type));
    expect(grants.map((r: RecordedResource) => [r.type, r.inputs.bucket, r.inputs.role])).toEqual([
      [MEMBER, "team-etcd-backups", "roles/storage.objectCreator"],
    ]);
    expect(existing.outputs.backupBucket).toBe("team-etcd-backups");
    expect(existing.byName("cluster-snapshot").inputs.stdin).toContain("BACKUP_BUCKET='team-etcd-backups'");
  });
});

describe("machines", () => {
  test("control planes may upload (storage scope); workers and the load balancer may not", () => {
    for (const vm of dev.ofType("gcp:compute/instance:Instance")) {
      const scopes = (vm.inputs.serviceAccount as { scopes: string[] }).scopes;
      const role = (vm.inputs.labels as Record<string, string>)["ha-k8s-role"];
      expect([vm.name, scopes.includes(STORAGE_SCOPE)]).toEqual([vm.name, role === "control-plane"]);
      expect(scopes).not.toContain("https://www.googleapis.com/auth/cloud-platform");
    }
  });

  test("the backup steps wait for the bucket and its grant; the snapshot for the first control plane's etcd", () => {
    expect(dev.byName("ha-k8s-dev-cp-2-backup").dependsOn).toEqual(["ha-k8s-dev-cp-2-prepare", "ha-k8s-dev-backup"]);
    expect(dev.byName("cluster-snapshot").dependsOn).toEqual(["ha-k8s-dev-cp-1-init", "ha-k8s-dev-cp-1-backup"]);
    // Neither carries secrets: their logs stay visible.
    expect(dev.byName("cluster-snapshot").secretInputs).not.toContain("stdin");
    expect(dev.byName("cluster-snapshot").inputs.logging).toBe("stdoutAndStderr");
  });
});
