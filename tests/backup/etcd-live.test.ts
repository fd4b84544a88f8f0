// scripts/etcd-backup.sh and scripts/etcd-restore.sh against real etcd (three members on loopback,
// TLS clients with kubeadm's certificate layout) and a real Cloud Storage JSON API server
// (fake-gcs-server), with the metadata server's token endpoint served by this test: the etcd
// leader alone uploads, a pre-change snapshot uploads from any member, a failed upload leaves
// nothing behind and the next run succeeds; the uploaded snapshot, downloaded again, restores onto
// three fresh machines whose new etcd cluster serves the keys written before.

import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ETCDUTL_PATH } from "../../render/backup";
import { PROJECT_DIR } from "../../render/project";
import { DEFAULT_KUBERNETES_MINOR, kubernetesRelease } from "../../render/versions";
import { requireTool } from "../tools";
import {
  EtcdTools,
  Member,
  buildTool,
  etcdctl,
  freePort,
  httpGet,
  httpStatus,
  makeMachine,
  makePki,
  run,
  runAsync,
  startAuthProxy,
  startFakeGcs,
  startMembers,
  startMetadataServer,
  stopAll,
} from "./live";

const CLUSTER = "c";
const BUCKET = "c-etcd-backups-test";
const TOKEN = `ya29.test-${crypto.randomBytes(8).toString("hex")}`;
const STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write";
const KEYS = 50;
const etcdVersion = kubernetesRelease(DEFAULT_KUBERNETES_MINOR).etcdVersion;

/** Real tools, or an Error naming what is missing (a failure in CI, a loud skip elsewhere). */
function tools(): { etcd: EtcdTools; fakeGcs: string } | Error {
  if (!requireTool("openssl", "openssl") || !requireTool("curl", "curl")) return new Error("openssl or curl missing");
  const etcd = buildTool("etcd.sh", etcdVersion);
  const fakeGcs = buildTool("fake-gcs-server.sh");
  const missing = [etcd, fakeGcs].filter((t): t is Error => t instanceof Error);
  if (missing.length > 0) {
    const message = `${missing.map((e) => e.message).join("; ")} (they need Go and the Go module proxy)`;
    if (process.env.CI) throw new Error(`${message}; CI must run this suite`);
    console.warn(`SKIPPING the live backup tests: ${message}`);
    return new Error(message);
  }
  return { etcd: { dir: etcd as string, version: etcdVersion }, fakeGcs: fakeGcs as string };
}

const figures: [string, string][] = [];
const found = tools();
const live = found instanceof Error ? describe.skip : describe;

live("etcd snapshots to a Cloud Storage server and back, on loopback", () => {
  const { etcd, fakeGcs } = found as Exclude<typeof found, Error>;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ha-k8s-backup-"));
  const pki = path.join(dir, "pki");
  const logs = path.join(dir, "logs");
  let members: Member[] = [];
  let gcsUrl = "";
  let metadata: Awaited<ReturnType<typeof startMetadataServer>>;
  let proxy: Awaited<ReturnType<typeof startAuthProxy>>;
  let scopes = [STORAGE_SCOPE];
  const bins = new Map<string, string>();

  const backup = (member: Member, env: Record<string, string> = {}) =>
    runAsync("bash", [path.join(PROJECT_DIR, "scripts/etcd-backup.sh")], {
      PATH: `${bins.get(member.name)}:${process.env.PATH}`,
      HA_K8S_ROOT: member.root,
      HA_K8S_SLEEP: "0",
      HA_K8S_METADATA_URL: metadata.url,
      HA_K8S_STORAGE_URL: proxy.url,
      BACKUP_BUCKET: BUCKET,
      CLUSTER_NAME: CLUSTER,
      NODE_NAME: member.name,
      ETCDUTL: ETCDUTL_PATH,
      BACKUP_REASON: "scheduled",
      BACKUP_LEADER_ONLY: "true",
      ...env,
    });
  const objects = async (): Promise<{ name: string; size: string; md5Hash: string }[]> => {
    const listing = await httpGet(`${gcsUrl}/storage/v1/b/${BUCKET}/o`);
    return (JSON.parse(listing.body.toString()).items ?? []) as { name: string; size: string; md5Hash: string }[];
  };
  // Tokens the metadata server hands out: TOKEN, or, while rotating, a new one per request.
  const rotation = { on: false, issued: [] as string[] };
  const nextToken = () => {
    if (!rotation.on) return TOKEN;
    rotation.issued.push(`${TOKEN}-${rotation.issued.length + 1}`);
    return rotation.issued[rotation.issued.length - 1];
  };
  const leftovers = () =>
    members.filter((m) => fs.existsSync(path.join(m.root, "var/lib/etcd/ha-k8s-snapshot"))).map((m) => m.name);
  const leader = (): Member => {
    const status = etcdctl(etcd, pki, members, ["endpoint", "status", "-w", "fields"]).stdout;
    const ids = [...status.matchAll(/"MemberID" : (\d+)/g)].map((m) => m[1]);
    const leaderId = /"Leader" : (\d+)/.exec(status)![1];
    return members[ids.indexOf(leaderId)];
  };

  beforeAll(
    async () => {
      fs.mkdirSync(logs);
      makePki(pki);
      members = await Promise.all(
        [1, 2, 3].map(async (i) => ({
          name: `${CLUSTER}-cp-${i}`,
          root: path.join(dir, `cp-${i}`),
          clientUrl: `https://127.0.0.1:${await freePort()}`,
          peerUrl: `http://127.0.0.1:${await freePort()}`,
        })),
      );
      for (const m of members) bins.set(m.name, makeMachine(m.root, etcd, pki, m));
      await startMembers(etcd, pki, members, "ha-k8s-test", logs);
      const put = run("bash", [
        "-c",
        `for i in $(seq 1 ${KEYS}); do "$@" put "/registry/test/key-$i" "value-$i" >/dev/null || exit 1; done`,
        "put",
        path.join(etcd.dir, "etcdctl"),
        `--endpoints=${members[0].clientUrl}`,
        `--cacert=${pki}/ca.crt`,
        `--cert=${pki}/healthcheck-client.crt`,
        `--key=${pki}/healthcheck-client.key`,
      ]);
      expect(put.stderr).toBe("");

      gcsUrl = await startFakeGcs(fakeGcs, logs);
      expect(await httpStatus(`${gcsUrl}/storage/v1/b`, "POST", JSON.stringify({ name: BUCKET }))).toBe(200);
      metadata = await startMetadataServer(nextToken, () => scopes);
      proxy = await startAuthProxy(gcsUrl, (t) => t === TOKEN || rotation.issued.includes(t));
    },
    15 * 60 * 1000,
  );

  afterAll(async () => {
    if (figures.length > 0) console.log(figures.map(([what, value]) => `${what}: ${value}`).join("\n"));
    await stopAll();
    await metadata?.close();
    await proxy?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("every member runs the timer's job; only the etcd leader uploads, named by time, cluster and member", async () => {
    const started = Date.now();
    const runs = await Promise.all(members.map(async (m) => ({ member: m, result: await backup(m) })));
    figures.push(["three members' scheduled runs (one upload), wall clock", `${Date.now() - started} ms`]);
    for (const r of runs)
      expect([r.member.name, r.result.status, r.result.stderr]).toEqual([r.member.name, 0, expect.any(String)]);
    const uploaded = await objects();
    expect(uploaded).toHaveLength(1);
    const lead = leader();
    expect(uploaded[0].name).toMatch(new RegExp(`^etcd/${CLUSTER}/\\d{8}T\\d{6}Z-${lead.name}-scheduled\\.db$`));
    for (const r of runs.filter((x) => x.member !== lead)) {
      expect(r.result.stderr).toContain("not the etcd leader");
    }
    const leaderRun = runs.find((r) => r.member === lead)!.result.stderr;
    figures.push(["the leader's log", `\n${leaderRun.trimEnd()}`]);
    figures.push(["snapshot size (50 keys)", `${uploaded[0].size} bytes`]);
    expect(leaderRun).toMatch(new RegExp(`snapshot checked by etcdutl: revision \\d+, ${KEYS} keys`));
    expect(leaderRun).toContain(`uploaded gs://${BUCKET}/${uploaded[0].name}`);
    expect(leftovers()).toEqual([]);
    // The token came from the metadata server (with its header) and went only to the storage API.
    expect(metadata.requests.some((r) => r.path.endsWith("/token") && r.headers["metadata-flavor"] === "Google")).toBe(
      true,
    );
    expect(proxy.requests.filter((r) => r.path.startsWith("/upload/"))).toHaveLength(1);
    for (const r of runs) expect(r.result.stderr).not.toContain(TOKEN);
    const status = fs.readFileSync(path.join(lead.root, "var/lib/ha-k8s/etcd-backup.last-success"), "utf8");
    expect(status).toContain(`gs://${BUCKET}/${uploaded[0].name} `);
  });

  test("the snapshot before a change uploads from whatever member runs it", async () => {
    const follower = members.find((m) => m !== leader())!;
    const result = await backup(follower, {
      BACKUP_REASON: "pre-change",
      BACKUP_LEADER_ONLY: "false",
      CONTROL_PLANE_COUNT: "3",
      KUBERNETES_VERSION: "1.36.3",
    });
    expect(result.status).toBe(0);
    expect(result.stderr).toContain("before a change; 3 control planes, Kubernetes 1.36.3");
    expect((await objects()).map((o) => o.name)).toContainEqual(
      expect.stringMatching(`-${follower.name}-pre-change\\.db$`),
    );
  });

  test("a failed upload leaves no local copy and no object; the next run uploads", async () => {
    const before = (await objects()).length;
    proxy.failUploads.on = true;
    const failed = await backup(leader());
    proxy.failUploads.on = false;
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toMatch(/upload to gs:\/\/\S+ failed: .*Backend Error.*the next run tries again/);
    expect(failed.stderr).toContain("attempt 2 of 3 failed");
    expect(leftovers()).toEqual([]);
    expect(await objects()).toHaveLength(before);
    // The seconds in the name keep a retry in the same second from colliding (ifGenerationMatch=0).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await backup(leader())).status).toBe(0);
    expect(await objects()).toHaveLength(before + 1);
  });

  test("a success response lost on the way: the retry, with a fresh token, uploads under a name of its own", async () => {
    const before = new Set((await objects()).map((o) => o.name));
    // The first attempt's object is stored, its answer never arrives and its token expires.
    rotation.on = true;
    proxy.loseUploadResponse.on = true;
    const result = await backup(leader());
    rotation.on = false;
    expect([result.status, result.stderr]).toEqual([0, expect.stringContaining("attempt 1 of 3 failed")]);
    expect(result.stderr).not.toMatch(/pre-conditions|Invalid Credentials/);
    const added = (await objects()).filter((o) => !before.has(o.name));
    expect(added.map((o) => o.name).sort()).toEqual([
      expect.stringMatching(/-scheduled-attempt2\.db$/),
      expect.stringMatching(/-scheduled\.db$/),
    ]);
    expect(added[0].md5Hash).toBe(added[1].md5Hash);
    expect(result.stderr).toContain(`uploaded gs://${BUCKET}/${added.find((o) => o.name.includes("attempt2"))!.name}`);
    // Each attempt asked for its own token; the expired one was not used again.
    expect(rotation.issued).toHaveLength(2);
    expect(proxy.loseUploadResponse.expired).toEqual(new Set([rotation.issued[0]]));
    expect(leftovers()).toEqual([]);
  });

  test("a VM whose scopes lack Cloud Storage is told which scope and where the fix is", async () => {
    scopes = ["https://www.googleapis.com/auth/logging.write"];
    const result = await backup(leader());
    scopes = [STORAGE_SCOPE];
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`its scopes lack ${STORAGE_SCOPE}`);
    expect(result.stderr).toContain("Backups on existing clusters");
    expect(leftovers()).toEqual([]);
  });

  test("the uploaded snapshot restores onto three fresh machines, whose etcd serves the keys", async () => {
    const [latest] = (await objects())
      .filter((o) => o.name.endsWith("-scheduled.db"))
      .sort((a, b) => (a.name < b.name ? 1 : -1));
    const download = await httpGet(`${gcsUrl}/storage/v1/b/${BUCKET}/o/${encodeURIComponent(latest.name)}?alt=media`);
    expect(download.status).toBe(200);
    expect(String(download.body.length)).toBe(latest.size);
    await stopAll(); // the old cluster is gone

    const fresh: Member[] = await Promise.all(
      [1, 2, 3].map(async (i) => ({
        name: `${CLUSTER}-cp-${i}`,
        root: path.join(dir, `fresh-cp-${i}`),
        clientUrl: `https://127.0.0.1:${await freePort()}`,
        peerUrl: `http://127.0.0.1:${await freePort()}`,
      })),
    );
    const initialCluster = fresh.map((m) => `${m.name}=${m.peerUrl}`).join(",");
    for (const m of fresh) {
      const bin = makeMachine(m.root, etcd, pki); // no etcd running there yet
      // What kubeadm init/join left on a fresh machine: a data directory of the new, empty cluster.
      fs.mkdirSync(path.join(m.root, "var/lib/etcd/member"), { recursive: true });
      fs.mkdirSync(path.join(m.root, "var/lib/ha-k8s/restore"), { recursive: true });
      fs.writeFileSync(path.join(m.root, "var/lib/ha-k8s/restore/snapshot.db"), download.body);
      const env = {
        PATH: `${bin}:${process.env.PATH}`,
        HA_K8S_ROOT: m.root,
        HA_K8S_SLEEP: "0",
        SNAPSHOT: "/var/lib/ha-k8s/restore/snapshot.db",
        MEMBER_NAME: m.name,
        MEMBER_PEER_URL: m.peerUrl,
        INITIAL_CLUSTER: initialCluster,
        CLUSTER_TOKEN: "ha-k8s-restore-test",
        ETCDUTL: ETCDUTL_PATH,
      };
      const restore = run("bash", [path.join(PROJECT_DIR, "scripts/etcd-restore.sh"), "restore"], env);
      expect([m.name, restore.status, restore.stderr]).toEqual([
        m.name,
        0,
        expect.stringContaining("restored the snapshot"),
      ]);
      expect(fs.readdirSync(m.root).filter((f) => f.startsWith("var"))).toEqual(["var"]);
      expect(fs.readdirSync(path.join(m.root, "var/lib")).some((f) => f.startsWith("etcd.before-restore-"))).toBe(true);
      // Running it again changes nothing.
      const again = run("bash", [path.join(PROJECT_DIR, "scripts/etcd-restore.sh"), "restore"], env);
      expect([again.status, again.stderr]).toEqual([0, expect.stringContaining("already restored")]);
    }

    const restarted = Date.now();
    await startMembers(etcd, pki, fresh, "ha-k8s-restore-test", logs);
    figures.push(["restored three-member cluster healthy after start", `${Date.now() - restarted} ms`]);
    const keys = etcdctl(etcd, pki, fresh, ["get", "--prefix", "/registry/test/", "--keys-only"]).stdout;
    expect(keys.split("\n").filter(Boolean)).toHaveLength(KEYS);
    expect(etcdctl(etcd, pki, fresh, ["get", "/registry/test/key-7", "--print-value-only"]).stdout.trim()).toBe(
      "value-7",
    );
    const members = etcdctl(etcd, pki, fresh, ["member", "list"]).stdout;
    expect(members.split("\n").filter((l) => l.includes(", started, "))).toHaveLength(3);
    // --bump-revision: watchers from before the restore never see the revision go back.
    const revision = Number(
      /"Revision" : (\d+)/.exec(etcdctl(etcd, pki, fresh, ["endpoint", "status", "-w", "fields"]).stdout)![1],
    );
    expect(revision).toBeGreaterThan(1_000_000_000);
  });
});
