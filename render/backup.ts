// etcd backups to Cloud Storage: names, the rules their settings follow, and the files that run them
// on the control planes (a systemd service + timer and its environment file). Pure: no Pulumi, no
// I/O. The scripts they run are scripts/etcd-backup.sh (one snapshot) and scripts/backup-install.sh
// (installs all this on a control plane); scripts/etcd-restore.sh and tools/restore-etcd.sh restore.

/** systemd unit name (service and timer) of the scheduled snapshot. */
export const BACKUP_UNIT = "ha-k8s-etcd-backup";
export const BACKUP_SCRIPT_PATH = "/usr/local/lib/ha-k8s/etcd-backup.sh";
export const BACKUP_ENV_PATH = "/etc/ha-k8s/etcd-backup.env";
/** Where backup-install.sh puts etcdutl of the etcd release kubeadm runs. */
/**
 * Where the snapshot scripts find etcdutl: a link backup-install.sh points at the installed
 * release's (…/etcd-v<version>/etcdutl). No version in it, so an etcd upgrade changes the install
 * step only.
 */
export const ETCDUTL_PATH = "/usr/local/lib/ha-k8s/etcdutl";

/**
 * The OAuth scope a control plane needs to upload (GCE access scopes cap what the metadata server's
 * token may do, whatever IAM grants; cloud.google.com/compute/docs/access/service-accounts#accesscopesiam).
 * There is no write-only storage scope; IAM (object create on one bucket) is what narrows it.
 */
export const STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write";

/**
 * OAuth scopes of a machine's service account (components/vm.ts; the lab's metadata server answers
 * the same). Control planes also upload etcd snapshots (STORAGE_SCOPE); IAM limits that to creating
 * objects in the backup bucket.
 */
export function scopesFor(role: "control-plane" | "worker" | "loadbalancer"): string[] {
  const base = ["https://www.googleapis.com/auth/logging.write", "https://www.googleapis.com/auth/monitoring.write"];
  return role === "control-plane" ? [...base, STORAGE_SCOPE] : base;
}
/** The role the nodes' service account gets on the bucket: create objects, nothing else (no read, no delete). */
export const BACKUP_BUCKET_ROLE = "roles/storage.objectCreator";
/** Deleted (noncurrent) versions are kept this long before the lifecycle removes them for good. */
export const NONCURRENT_VERSION_DAYS = 7;

/** Objects of one cluster: etcd/<cluster>/<UTC time>-<member>-<reason>.db (scripts/etcd-backup.sh). */
export const backupObjectPrefix = (cluster: string): string => `etcd/${cluster}/`;

/**
 * The bucket the program creates when backupBucket is empty is named by Pulumi from this resource
 * name plus a random suffix ("-" and 7 hex digits), so a stack rebuilt after `pulumi destroy` (which
 * keeps the old bucket and its snapshots) gets a new one instead of a name conflict.
 */
export const createdBucketResourceName = (cluster: string): string => `${cluster}-etcd-backups`;
/** What the offline render shows where Pulumi's name for a created bucket goes. */
export const createdBucketPlaceholder = (cluster: string): string =>
  `${createdBucketResourceName(cluster)}-<pulumi-suffix>`;

/**
 * Cloud Storage's bucket naming rules (cloud.google.com/storage/docs/buckets#naming): 3-63
 * characters (up to 222 with dots, 63 per dot-separated part) of lower-case letters, digits, "-",
 * "_" and "."; a letter or digit first and last; not an IPv4 address; not starting with "goog" nor
 * containing "google" (or "g00gle"). Returns why a name breaks them, or undefined.
 */
export function bucketNameProblem(name: string): string | undefined {
  if (!/^[a-z0-9][a-z0-9._-]*[a-z0-9]$/.test(name)) {
    return 'may use only lower-case letters, digits, "-", "_" and ".", and must start and end with a letter or digit';
  }
  const limit = name.includes(".") ? 222 : 63;
  if (name.length < 3 || name.length > limit) return `must be 3 to ${limit} characters long`;
  if (name.split(".").some((part) => part.length === 0 || part.length > 63)) {
    return "has an empty or longer than 63 characters dot-separated part";
  }
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return "must not be an IP address";
  if (name.startsWith("goog") || /g[o0][o0]gle/.test(name)) return 'must not start with "goog" or contain "google"';
  return undefined;
}

// ---- backupSchedule: a systemd calendar event (systemd.time(7)), a subset validated here ----------

const NAMED_SCHEDULES = [
  "minutely",
  "hourly",
  "daily",
  "weekly",
  "monthly",
  "yearly",
  "annually",
  "quarterly",
  "semiannually",
];
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
/** Snapshots copy the whole database: not more often than this. */
export const MIN_SCHEDULE_GAP_MINUTES = 5;

/** What the validator accepts, for messages. */
export const SCHEDULE_FORMS =
  "a systemd calendar event: hourly, daily, weekly, monthly, or [weekdays] [[YYYY-]MM-DD] HH:MM[:SS] [UTC], " +
  "each field *, a number, a list a,b, a range a..b or a repetition a/n (e.g. *-*-* *:00/30, Mon..Fri 02:00)";

interface Field {
  readonly name: string;
  readonly min: number;
  readonly max: number;
}
const YEAR: Field = { name: "year", min: 1970, max: 2199 };
const MONTH: Field = { name: "month", min: 1, max: 12 };
const DAY: Field = { name: "day", min: 1, max: 31 };
const HOUR: Field = { name: "hour", min: 0, max: 23 };
const MINUTE: Field = { name: "minute", min: 0, max: 59 };
const SECOND: Field = { name: "second", min: 0, max: 59 };

type Item =
  { kind: "any" } | { kind: "values"; from: number; to: number; step?: number; range: boolean; repeat: boolean };

function parseField(text: string, field: Field): { items: Item[] } | { problem: string } {
  const items: Item[] = [];
  for (const part of text.split(",")) {
    if (part === "*") {
      if (text !== "*") return { problem: `${field.name} "${text}" mixes * with other values` };
      items.push({ kind: "any" });
      continue;
    }
    const m = /^(\d{1,4})(?:\.\.(\d{1,4}))?(?:\/(\d{1,4}))?$/.exec(part);
    if (!m) return { problem: `${field.name} "${part}" is not a number, a range a..b or a repetition a/n` };
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    const step = m[3] === undefined ? undefined : Number(m[3]);
    if (from < field.min || to > field.max || to < from) {
      return { problem: `${field.name} "${part}" is outside ${field.min}..${field.max}` };
    }
    if (step !== undefined && step < 1) return { problem: `${field.name} "${part}" repeats every 0` };
    items.push({ kind: "values", from, to, step, range: m[2] !== undefined, repeat: step !== undefined });
  }
  return { items };
}

/** The minutes of an hour a minute field fires at. */
function minutesOf(items: readonly Item[]): number[] {
  const minutes = new Set<number>();
  for (const item of items) {
    if (item.kind === "any") {
      for (let m = 0; m < 60; m++) minutes.add(m);
      continue;
    }
    const last = item.repeat && !item.range ? MINUTE.max : item.to;
    for (let m = item.from; m <= last; m += item.step ?? 1) minutes.add(m);
  }
  return [...minutes].sort((a, b) => a - b);
}

function weekdaysProblem(text: string): string | undefined {
  const day = (d: string) => WEEKDAYS.includes(d) || FULL_WEEKDAYS.includes(d);
  for (const part of text.toLowerCase().split(",")) {
    const ends = part.split("..");
    if (ends.length > 2 || !ends.every(day)) return `weekdays "${text}" are not names like Mon, Tue..Fri or Sat,Sun`;
  }
  return undefined;
}

/**
 * Why `spec` is not a calendar event this project accepts (syntax only), or undefined. Stricter than
 * systemd (no time zones but UTC, no "~" last days, no fractional seconds); the artifact suite
 * checks that whatever this accepts, `systemd-analyze calendar` accepts too.
 */
export function calendarSyntaxProblem(spec: string): string | undefined {
  if (spec.trim() !== spec || spec.length === 0) return "is empty or has spaces around it";
  const tokens = spec.split(/ +/);
  if (tokens[tokens.length - 1] === "UTC") tokens.pop();
  if (tokens.length === 0) return "has no date or time";
  if (tokens.length === 1 && NAMED_SCHEDULES.includes(tokens[0].toLowerCase())) return undefined;
  let index = 0;
  if (/^[A-Za-z]/.test(tokens[index] ?? "")) {
    const problem = weekdaysProblem(tokens[index]);
    if (problem) return problem;
    index++;
  }
  if (tokens[index]?.includes("-")) {
    const parts = tokens[index].split("-");
    const fields = parts.length === 3 ? [YEAR, MONTH, DAY] : parts.length === 2 ? [MONTH, DAY] : undefined;
    if (!fields) return `date "${tokens[index]}" is not [YYYY-]MM-DD`;
    for (let i = 0; i < parts.length; i++) {
      const parsed = parseField(parts[i], fields[i]);
      if ("problem" in parsed) return parsed.problem;
    }
    index++;
  }
  if (tokens[index]?.includes(":")) {
    const parts = tokens[index].split(":");
    if (parts.length < 2 || parts.length > 3) return `time "${tokens[index]}" is not HH:MM[:SS]`;
    const fields = [HOUR, MINUTE, SECOND];
    for (let i = 0; i < parts.length; i++) {
      const parsed = parseField(parts[i], fields[i]);
      if ("problem" in parsed) return parsed.problem;
    }
    index++;
  }
  if (index === 0) return `"${tokens[0]}" is not a weekday, a date or a time`;
  if (index < tokens.length)
    return `"${tokens.slice(index).join(" ")}" is not understood here (only UTC may follow the time)`;
  return undefined;
}

/** Why `spec` fires more often than every MIN_SCHEDULE_GAP_MINUTES, or undefined (syntax assumed valid). */
export function calendarFrequencyProblem(spec: string): string | undefined {
  const tooOften = `snapshots copy the whole database; at most one every ${MIN_SCHEDULE_GAP_MINUTES} minutes (e.g. *-*-* *:00/15)`;
  if (spec.toLowerCase().split(" ")[0] === "minutely") return `fires every minute; ${tooOften}`;
  const time = spec.split(" ").find((t) => t.includes(":"));
  if (!time) return undefined;
  const [, minute, second] = time.split(":");
  if (second !== undefined && !/^\d+$/.test(second)) return `fires more than once a minute; ${tooOften}`;
  const parsed = parseField(minute, MINUTE);
  if ("problem" in parsed) return parsed.problem;
  const minutes = minutesOf(parsed.items);
  const gaps = minutes.map((m, i) => (i === 0 ? m + 60 - minutes[minutes.length - 1] : m - minutes[i - 1]));
  // One minute value fires once an hour at most (the hour field cannot repeat within an hour).
  if (minutes.length > 1 && Math.min(...gaps) < MIN_SCHEDULE_GAP_MINUTES) {
    return `fires ${Math.min(...gaps)} minute(s) apart; ${tooOften}`;
  }
  return undefined;
}

export function calendarProblem(spec: string): string | undefined {
  return calendarSyntaxProblem(spec) ?? calendarFrequencyProblem(spec);
}

// ---- the files on the control planes ---------------------------------------------------------------

/**
 * The timer (systemd.timer(5)). Every control plane fires at the same moment (no randomized delay,
 * 1 s accuracy instead of the default minute), so they look at the same etcd leader and exactly one
 * uploads per period; a run missed while the machine was off happens when it boots (Persistent=).
 */
export function renderBackupTimer(schedule: string): string {
  return [
    "# Rendered by ha-k8s (render/backup.ts): the backupSchedule of the stack.",
    "[Unit]",
    "Description=ha-k8s: scheduled etcd snapshot to Cloud Storage",
    "",
    "[Timer]",
    `OnCalendar=${schedule}`,
    "Persistent=true",
    "AccuracySec=1s",
    "RandomizedDelaySec=0",
    "",
    "[Install]",
    "WantedBy=timers.target",
    "",
  ].join("\n");
}

/**
 * How long one run of etcd-backup.sh may take, all of it: the wait for another run's lock, the
 * snapshot and every upload attempt get at most what is left (the script's own default of
 * BACKUP_RUN_SECONDS is this number; tests/backup/bounds.test.ts keeps them equal). 35 minutes: less
 * than the 40 Pulumi gives the pre-change snapshot step (stepTimeouts, render/steps.ts).
 */
export const BACKUP_RUN_SECONDS = 2100;
/** What systemd adds to the run's bound before it kills the service: the script's own cleanup. */
export const BACKUP_STOP_MARGIN_SECONDS = 120;

/**
 * The service the timer starts (systemd.service(5), oneshot): one run of etcd-backup.sh, whose log
 * lines go to the journal, so `systemctl status ha-k8s-etcd-backup` shows the last run's outcome.
 * Its TimeoutStartSec (a oneshot's whole run, systemd.service(5)) is the script's bound plus a margin,
 * so the script, not systemd, ends a run that takes too long, and says why.
 */
export function renderBackupService(): string {
  return [
    "# Rendered by ha-k8s (render/backup.ts). One etcd snapshot; only the etcd leader uploads.",
    "[Unit]",
    "Description=ha-k8s: etcd snapshot to Cloud Storage (the etcd leader uploads)",
    "Wants=network-online.target",
    "After=network-online.target crio.service kubelet.service",
    "# Only a control plane runs etcd; kubeadm writes its static pod manifest here (the restore moves it away).",
    "ConditionPathExists=/etc/kubernetes/manifests/etcd.yaml",
    "",
    "[Service]",
    "Type=oneshot",
    `EnvironmentFile=${BACKUP_ENV_PATH}`,
    `ExecStart=${BACKUP_SCRIPT_PATH}`,
    `TimeoutStartSec=${BACKUP_RUN_SECONDS + BACKUP_STOP_MARGIN_SECONDS}s`,
    "Nice=10",
    "IOSchedulingClass=idle",
    "PrivateTmp=true",
    "ProtectHome=true",
    "NoNewPrivileges=true",
    "",
  ].join("\n");
}

export interface BackupEnvironment {
  readonly bucket: string;
  readonly clusterName: string;
  readonly nodeName: string;
  readonly etcdVersion: string;
  /** scheduled (the timer, leader only) or pre-change (the step before risky changes, any member). */
  readonly reason: "scheduled" | "pre-change";
}

/** etcd-backup.sh's inputs, as variables (for the bundle env and the systemd EnvironmentFile). */
export function backupVariables(env: BackupEnvironment): Record<string, string> {
  return {
    BACKUP_BUCKET: env.bucket,
    CLUSTER_NAME: env.clusterName,
    NODE_NAME: env.nodeName,
    ETCDUTL: ETCDUTL_PATH,
    BACKUP_REASON: env.reason,
    BACKUP_LEADER_ONLY: env.reason === "scheduled" ? "true" : "false",
  };
}

/**
 * The systemd EnvironmentFile (systemd.exec(5)): KEY=value lines. Values are unquoted, so they are
 * restricted to characters that need no quoting in either systemd or bash.
 */
export function renderBackupEnvFile(env: BackupEnvironment): string {
  const lines = Object.entries(backupVariables(env)).map(([key, value]) => {
    if (!/^[A-Za-z0-9._/:<>-]*$/.test(value)) {
      throw new Error(`backup setting ${key}=${value} has characters an environment file cannot carry unquoted`);
    }
    return `${key}=${value}`;
  });
  return [`# Rendered by ha-k8s (render/backup.ts); read by ${BACKUP_UNIT}.service.`, ...lines, ""].join("\n");
}
