// render/backup.ts: bucket naming rules, the backupSchedule validator, and the files the control
// planes get. (systemd itself checks the rendered units and schedules in the artifact suite.)

import {
  MIN_SCHEDULE_GAP_MINUTES,
  bucketNameProblem,
  calendarFrequencyProblem,
  calendarProblem,
  calendarSyntaxProblem,
  createdBucketResourceName,
  renderBackupEnvFile,
  renderBackupService,
  renderBackupTimer,
} from "../../render/backup";
import { LONGEST_NAME_SUFFIX } from "../../render/config";

describe("bucket names", () => {
  test.each([
    ["my-backups", undefined],
    ["a.b.c", undefined],
    ["under_score-1", undefined],
    ["ab", /3 to 63/],
    ["a".repeat(64), /3 to 63/],
    ["Upper", /lower-case/],
    ["-dash", /start and end/],
    ["dash-", /start and end/],
    ["192.168.5.4", /IP address/],
    ["goog-backups", /goog/],
    ["my-google-backups", /google/],
    ["my-g00gle-backups", /google/],
    ["a..b", /dot-separated part/],
    ["has space", /lower-case/],
  ])("%s", (name, problem) => {
    const found = bucketNameProblem(name);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toMatch(problem);
  });

  test("the created bucket's name fits Cloud Storage's 63 characters with Pulumi's suffix at the longest cluster name", () => {
    const name = `${createdBucketResourceName("a".repeat(63 - LONGEST_NAME_SUFFIX))}-0a1b2c3`;
    expect(name.length).toBeLessThanOrEqual(63);
    expect(bucketNameProblem(name)).toBeUndefined();
  });
});

describe("backupSchedule", () => {
  test.each([
    "hourly",
    "Daily",
    "weekly",
    "monthly",
    "*-*-* *:00:00",
    "*-*-* 02:30",
    "02:30",
    "*:0/15",
    "*:00,30",
    "Mon..Fri 02:00",
    "Sat,Sun *-*-* 03:00:00",
    "*-*-01 00:00:00",
    "2027-*-* 01:00",
    "daily UTC",
    "*-*-* 04:00 UTC",
    "0/2:00",
  ])("%s is accepted", (spec) => {
    expect(calendarProblem(spec)).toBeUndefined();
  });

  test.each([
    ["", /empty/],
    [" hourly", /spaces/],
    ["bogus", /weekdays "bogus" are not names like Mon/],
    ["12", /"12" is not a weekday, a date or a time/],
    ["Funday 02:00", /weekdays/],
    ["*-*-* 25:00", /hour "25" is outside 0..23/],
    ["*-*-* 1:60", /minute "60" is outside 0..59/],
    ["*-13-01", /month "13"/],
    ["*:*/15", /not a number/],
    ["*-*-* 02:00 Europe/Berlin", /only UTC/],
    ["*-*~01 00:00", /not a number|not \[YYYY-\]MM-DD/],
    ["1:2:3:4", /HH:MM\[:SS\]/],
  ])("%j is refused: %s", (spec, problem) => {
    expect(calendarSyntaxProblem(spec)).toMatch(problem);
  });

  test.each([
    ["minutely", /every minute/],
    ["*:*", /1 minute\(s\) apart/],
    ["*:0/2", /2 minute\(s\) apart/],
    ["*:00..10", /1 minute\(s\) apart/],
    ["*:00,03", /3 minute\(s\) apart/],
    ["*:00:*", /more than once a minute/],
    ["*:00:0/30", /more than once a minute/],
  ])("%j fires too often", (spec, problem) => {
    expect(calendarSyntaxProblem(spec)).toBeUndefined();
    expect(calendarFrequencyProblem(spec)).toMatch(problem);
    expect(calendarFrequencyProblem(spec)).toContain(`at most one every ${MIN_SCHEDULE_GAP_MINUTES} minutes`);
  });

  test("a list that wraps around the hour is measured across it", () => {
    expect(calendarFrequencyProblem("*:02,58")).toMatch(/4 minute\(s\) apart/);
    expect(calendarFrequencyProblem("*:05,55")).toBeUndefined();
  });
});

describe("files on the control planes", () => {
  test("the timer fires on the schedule, at the same second everywhere, and catches up after downtime", () => {
    const timer = renderBackupTimer("*-*-* *:00/30");
    expect(timer).toContain("OnCalendar=*-*-* *:00/30\n");
    expect(timer).toContain("Persistent=true\n");
    expect(timer).toContain("AccuracySec=1s\n");
    expect(timer).toContain("RandomizedDelaySec=0\n");
    expect(timer).toContain("WantedBy=timers.target\n");
  });

  test("the service runs the installed script once with the installed environment, on control planes only", () => {
    const service = renderBackupService();
    expect(service).toContain("Type=oneshot\n");
    expect(service).toContain("ExecStart=/usr/local/lib/ha-k8s/etcd-backup.sh\n");
    expect(service).toContain("EnvironmentFile=/etc/ha-k8s/etcd-backup.env\n");
    expect(service).toContain("ConditionPathExists=/etc/kubernetes/manifests/etcd.yaml\n");
  });

  test("the environment file names the bucket, cluster, member and etcdutl; only the timer is leader-only", () => {
    const env = { bucket: "b-1", clusterName: "c", nodeName: "c-cp-2", etcdVersion: "3.6.8" };
    const scheduled = renderBackupEnvFile({ ...env, reason: "scheduled" });
    expect(scheduled.split("\n").filter((l) => !l.startsWith("#"))).toEqual([
      "BACKUP_BUCKET=b-1",
      "CLUSTER_NAME=c",
      "NODE_NAME=c-cp-2",
      "ETCDUTL=/usr/local/lib/ha-k8s/etcdutl",
      "BACKUP_REASON=scheduled",
      "BACKUP_LEADER_ONLY=true",
      "",
    ]);
    expect(renderBackupEnvFile({ ...env, reason: "pre-change" })).toContain("BACKUP_LEADER_ONLY=false\n");
    expect(() => renderBackupEnvFile({ ...env, bucket: "b'; rm -rf /", reason: "scheduled" })).toThrow(/unquoted/);
  });
});
