// The backup's systemd units checked by systemd itself (systemd-analyze, Debian's systemd package):
// `systemd-analyze verify` on the service and timer exactly as rendered, inside a root that has the
// system's own units and the real etcd-backup.sh where ExecStart points; `systemd-analyze calendar`
// on the timer's schedule; and the backupSchedule validator (render/backup.ts) held against systemd
// on sample schedules. Also: the etcd release pinned per Kubernetes minor against kubeadm's image.

import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { RenderedFile } from "../../render/artifacts";
import { BACKUP_SCRIPT_PATH, calendarSyntaxProblem } from "../../render/backup";
import { PROJECT_DIR } from "../../render/project";
import { CheckResult, hasTool, kubeadmFor, missing, run, toolVersion } from "./checks";

const SYSTEM_UNITS = ["/usr/lib/systemd/system", "/lib/systemd/system"];
const install = 'install the Debian package "systemd" (tools/setup.sh does it)';

function analyzeVersion(): string {
  return toolVersion("systemd-analyze", "systemd-analyze", ["--version"]);
}

/**
 * `systemd-analyze verify --root=<dir>` of the units named like the files. systemd only warns about
 * bad settings (and still exits 0), so any output is a failure.
 */
export function verifyUnits(units: readonly { name: string; content: string }[]): { ok: boolean; detail: string } {
  const systemUnits = SYSTEM_UNITS.find((d) => fs.existsSync(path.join(d, "sysinit.target")));
  if (!systemUnits) return { ok: false, detail: "no system units (sysinit.target) on this machine to verify against" };
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ha-k8s-systemd-"));
  try {
    fs.cpSync(systemUnits, path.join(root, "usr/lib/systemd/system"), { recursive: true, dereference: false });
    const etc = path.join(root, "etc/systemd/system");
    fs.mkdirSync(etc, { recursive: true });
    for (const unit of units) fs.writeFileSync(path.join(etc, unit.name), unit.content);
    const script = path.join(root, BACKUP_SCRIPT_PATH);
    fs.mkdirSync(path.dirname(script), { recursive: true });
    fs.copyFileSync(path.join(PROJECT_DIR, "scripts/etcd-backup.sh"), script);
    fs.chmodSync(script, 0o755);
    const verify = run("systemd-analyze", ["verify", "--man=no", `--root=${root}`, ...units.map((u) => u.name)]);
    return { ok: verify.status === 0 && verify.output === "", detail: verify.output || `exit ${verify.status}` };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

export function checkSystemdUnits(group: readonly RenderedFile[]): CheckResult[] {
  const artifact = group.map((u) => u.path).join(" + ");
  if (!hasTool("systemd-analyze")) return [missing(artifact, "systemd-analyze verify", install)];
  const version = analyzeVersion();
  const verified = verifyUnits(group.map((u) => ({ name: path.basename(u.path), content: u.content })));
  const results: CheckResult[] = [
    { artifact, tool: "systemd-analyze verify", version, ok: verified.ok, detail: verified.ok ? "" : verified.detail },
  ];
  for (const timer of group.filter((u) => u.path.endsWith(".timer"))) {
    const schedule = /^OnCalendar=(.*)$/m.exec(timer.content)?.[1] ?? "";
    const calendar = run("systemd-analyze", ["calendar", "--iterations=2", schedule]);
    results.push({
      artifact: `${timer.path} (OnCalendar=${schedule})`,
      tool: "systemd-analyze calendar",
      version,
      ok: calendar.status === 0,
      detail: calendar.status === 0 ? "" : calendar.output,
    });
  }
  return results;
}

/**
 * Schedules the validator must refuse or may accept; whatever it accepts, systemd must accept too
 * (the validator is stricter than systemd, never looser), and what systemd refuses it refuses.
 */
export const SCHEDULE_SAMPLES = [
  "hourly",
  "Daily",
  "weekly",
  "monthly",
  "quarterly",
  "semiannually",
  "yearly",
  "annually",
  "minutely",
  "*-*-* *:00:00",
  "*-*-* 02:30",
  "02:30",
  "*:0/15",
  "*:00,30",
  "*:0..5",
  "0/2:00",
  "Mon..Fri 02:00",
  "Sat,Sun *-*-* 03:00:00",
  "Tuesday 4:00",
  "Mon",
  "*-*-01 00:00:00",
  "2027-*-* 01:00",
  "1-1",
  "*-1-1..5 0:0",
  "daily UTC",
  "*-*-* 04:00 UTC",
  "*-*-* 04:00 Europe/Berlin",
  "*-*~01 00:00",
  "*-*-* 4:00:00.5",
  "*:*/15",
  "*-*-* 25:00",
  "*-*-* 1:60",
  "*-13-01",
  "Funday 02:00",
  "bogus",
  "every hour",
  " 12:00",
  "12:00 ",
  "",
];

export function checkScheduleValidator(): CheckResult {
  const artifact = `render/backup.ts calendarSyntaxProblem (${SCHEDULE_SAMPLES.length} sample schedules)`;
  if (!hasTool("systemd-analyze")) return missing(artifact, "systemd-analyze calendar", install);
  const disagreements: string[] = [];
  for (const sample of SCHEDULE_SAMPLES) {
    const systemd = run("systemd-analyze", ["calendar", sample]).status === 0;
    const ours = calendarSyntaxProblem(sample) === undefined;
    if (ours && !systemd) disagreements.push(`${JSON.stringify(sample)}: accepted here, refused by systemd`);
  }
  return {
    artifact,
    tool: "systemd-analyze calendar (nothing accepted that systemd refuses)",
    version: analyzeVersion(),
    ok: disagreements.length === 0,
    detail: disagreements.join("\n"),
  };
}

/** The etcd release pinned in render/versions.ts is the one kubeadm runs (its etcd image tag). */
export function checkEtcdVersion(patch: string, etcdVersion: string): CheckResult {
  const artifact = `render/versions.ts etcdVersion ${etcdVersion} (Kubernetes ${patch})`;
  const kubeadm = kubeadmFor(patch);
  if (kubeadm instanceof Error) return missing(artifact, "kubeadm", kubeadm.message);
  const images = run(kubeadm, ["config", "images", "list", "--kubernetes-version", `v${patch}`]);
  const etcd = images.output.split("\n").find((l) => l.includes("/etcd:")) ?? "";
  const ok = images.status === 0 && new RegExp(`/etcd:${etcdVersion.replace(/\./g, "\\.")}-\\d+$`).test(etcd);
  return {
    artifact,
    tool: "kubeadm config images list (etcd)",
    version: toolVersion(`kubeadm-${patch}`, kubeadm, ["version", "-o", "short"]),
    ok,
    detail: ok ? "" : `kubeadm v${patch} runs ${etcd || images.output}`,
  };
}
