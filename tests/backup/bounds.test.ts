// The scheduled snapshot's time bounds agree (issue 20, §5): scripts/etcd-backup.sh bounds its whole
// run by BACKUP_RUN_SECONDS (the lock wait, the snapshot and every upload attempt get what is left),
// the systemd unit lets it run that long plus a margin (TimeoutStartSec bounds a oneshot's whole run,
// systemd.service(5)), and Pulumi's timeout of the pre-change snapshot step is longer still. Pure:
// reads the script's text and renders the unit.

import * as fs from "fs";
import * as path from "path";
import { BACKUP_RUN_SECONDS, BACKUP_STOP_MARGIN_SECONDS, renderBackupService } from "../../render/backup";
import type { Plan, Step } from "../../render/plan";
import { PROJECT_DIR } from "../../render/project";
import { stepTimeouts } from "../../render/steps";

const script = fs.readFileSync(path.join(PROJECT_DIR, "scripts/etcd-backup.sh"), "utf8");
const number = (pattern: RegExp): number => {
  const m = pattern.exec(script);
  if (!m) throw new Error(`scripts/etcd-backup.sh has no ${pattern}`);
  return Number(m[1]);
};
const seconds = (span: string): number => {
  const m = /^(\d+)(s|m|min)$/.exec(span);
  if (!m) throw new Error(`not a span this test reads: ${span}`);
  return Number(m[1]) * (m[2] === "s" ? 1 : 60);
};

describe("the scheduled snapshot's time bounds", () => {
  const runSeconds = number(/^RUN_SECONDS="\$\{BACKUP_RUN_SECONDS:-(\d+)\}"$/m);

  test("the script's default bound is render/backup.ts's BACKUP_RUN_SECONDS", () => {
    expect(runSeconds).toBe(BACKUP_RUN_SECONDS);
  });

  test("systemd gives the run its bound plus a margin, so the script, not systemd, ends a run that takes too long", () => {
    const timeout = /^TimeoutStartSec=(\S+)$/m.exec(renderBackupService())?.[1];
    expect(timeout).toBeDefined();
    expect(seconds(timeout!)).toBe(BACKUP_RUN_SECONDS + BACKUP_STOP_MARGIN_SECONDS);
    expect(BACKUP_STOP_MARGIN_SECONDS).toBeGreaterThanOrEqual(60);
  });

  test("Pulumi's timeout of the pre-change snapshot step is longer than the unit's", () => {
    const plan = { upgrade: undefined } as unknown as Plan;
    const step = { kind: "snapshot", id: "cluster/snapshot" } as unknown as Step;
    expect(seconds(stepTimeouts(plan, step).create)).toBeGreaterThan(BACKUP_RUN_SECONDS + BACKUP_STOP_MARGIN_SECONDS);
  });

  test("every step of a run is capped by what is left of it: no fixed wait longer than the bound", () => {
    // The lock wait is a share of the bound; the snapshot and each upload attempt take `left <cap>`.
    expect(script).toMatch(/flock -w \$\(\(RUN_SECONDS \/ 3\)\) 9/);
    expect(script).toMatch(/ETCDCTL_TIMEOUT="\$\(left "\$SNAPSHOT_SECONDS"\)s"/);
    expect(script).toMatch(/--max-time "\$budget"/);
    const caps = [number(/^SNAPSHOT_SECONDS=(\d+)$/m), number(/^UPLOAD_SECONDS=(\d+)$/m)];
    for (const cap of caps) expect(cap).toBeLessThan(BACKUP_RUN_SECONDS);
    // No literal timeout left over from before (flock -w 1800, --max-time 1800, 15m).
    expect(script).not.toMatch(/flock -w \d|--max-time \d{3,}|ETCDCTL_TIMEOUT=\d/);
  });
});
