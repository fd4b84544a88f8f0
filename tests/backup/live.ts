// Real tools on loopback for the backup tests: etcd members with TLS clients (tools/etcd.sh builds
// etcd, etcdctl and etcdutl from etcd's Go modules), fake-gcs-server (a Cloud Storage JSON API
// server, built by tools/fake-gcs-server.sh), a GCE metadata server and a token-checking proxy in
// front of fake-gcs-server served from this process. Each "machine" is a directory standing in
// for a control plane's root (HA_K8S_ROOT) with a crictl stand-in: the only thing not real.

import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import { ETCDUTL_PATH } from "../../render/backup";
import { PROJECT_DIR } from "../../render/project";
import { freePort, sleep } from "../tools";

export { freePort, sleep };

export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20000) {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await condition()) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A tool built by one of tools/*.sh (prints its path), or an Error saying why not. */
export function buildTool(script: string, ...args: string[]): string | Error {
  const out = spawnSync("bash", [path.join(PROJECT_DIR, "tools", script), ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  return out.status === 0 ? out.stdout.trim() : new Error(`tools/${script} ${args.join(" ")} failed`);
}

/** Every process the tests start, stopped by stopAll (SIGTERM, then SIGKILL). */
const children: ChildProcess[] = [];
export function track(child: ChildProcess): ChildProcess {
  children.push(child);
  return child;
}
export async function stopAll(): Promise<void> {
  const alive = children.filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of alive) c.kill("SIGTERM");
  const deadline = Date.now() + 5000;
  while (alive.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) await sleep(50);
  for (const c of alive) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.length = 0;
}

/**
 * Runs a command without blocking this process: the servers the command talks to (metadata server,
 * token proxy) live in it.
 */
export function runAsync(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] }));
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

export function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(command, args, { encoding: "utf8", env: { ...process.env, ...env } });
  return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, as kubeadm's etcd PKI has. */
export function makePki(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const script = `
set -euo pipefail
cd "$1"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -out ca.crt -days 1 -subj /CN=etcd-ca
sign() {
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1"
  printf '%s\\n' "$2" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 1 -extfile "$1.ext" 2>/dev/null
}
sign server "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth"
sign healthcheck-client "extendedKeyUsage=clientAuth"
`;
  const out = run("bash", ["-c", script, "pki", dir]);
  if (out.status !== 0) throw new Error(`openssl failed: ${out.stderr}`);
}

export interface Member {
  readonly name: string;
  /** The machine's root (HA_K8S_ROOT); the member's data is <root>/var/lib/etcd, as on a kubeadm node. */
  readonly root: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  process?: ChildProcess;
}

export interface EtcdTools {
  readonly dir: string;
  readonly version: string;
}

/** Starts (or restarts on its data) each member; resolves when the cluster answers. */
export async function startMembers(
  tools: EtcdTools,
  pki: string,
  members: Member[],
  token: string,
  log: string,
): Promise<void> {
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  for (const m of members) {
    const out = fs.openSync(path.join(log, `${m.name}.log`), "a");
    m.process = track(
      spawn(
        path.join(tools.dir, "etcd"),
        [
          `--name=${m.name}`,
          `--data-dir=${path.join(m.root, "var/lib/etcd")}`,
          `--listen-client-urls=${m.clientUrl}`,
          `--advertise-client-urls=${m.clientUrl}`,
          `--cert-file=${pki}/server.crt`,
          `--key-file=${pki}/server.key`,
          "--client-cert-auth",
          `--trusted-ca-file=${pki}/ca.crt`,
          `--listen-peer-urls=${m.peerUrl}`,
          `--initial-advertise-peer-urls=${m.peerUrl}`,
          `--initial-cluster=${initialCluster}`,
          `--initial-cluster-token=${token}`,
          "--initial-cluster-state=new",
          "--log-level=warn",
        ],
        { stdio: ["ignore", out, out] },
      ),
    );
  }
  await waitFor(
    "every etcd member to be healthy",
    () =>
      etcdctl(tools, pki, members, ["endpoint", "health", "--cluster"]).status === 0 &&
      members.every((m) => m.process!.exitCode === null),
    30000,
  );
}

export function etcdctl(tools: EtcdTools, pki: string, members: readonly Member[], args: readonly string[]) {
  return run(path.join(tools.dir, "etcdctl"), [
    `--endpoints=${members.map((m) => m.clientUrl).join(",")}`,
    `--cacert=${pki}/ca.crt`,
    `--cert=${pki}/healthcheck-client.crt`,
    `--key=${pki}/healthcheck-client.key`,
    ...args,
  ]);
}

/**
 * A control plane's root: kubeadm's etcd client certificates, etcdutl where backup-install.sh puts
 * it, and bin/crictl, standing in for CRI-O: `crictl ps` names the etcd container when the member
 * runs, `crictl exec <id> <tool> ...` runs the real tool with the container's view of the files
 * (the pod mounts /var/lib/etcd and /etc/kubernetes/pki/etcd from the host at the same paths) and
 * its https://127.0.0.1:2379 endpoint mapped to the member's test port.
 */
export function makeMachine(root: string, tools: EtcdTools, pki: string, member?: Member): string {
  const pkiDir = path.join(root, "etc/kubernetes/pki/etcd");
  fs.mkdirSync(pkiDir, { recursive: true });
  for (const f of ["ca.crt", "healthcheck-client.crt", "healthcheck-client.key"]) {
    fs.copyFileSync(path.join(pki, f), path.join(pkiDir, f));
  }
  const etcdutlDir = path.join(root, `usr/local/lib/ha-k8s/etcd-v${tools.version}`);
  fs.mkdirSync(etcdutlDir, { recursive: true });
  fs.symlinkSync(path.join(tools.dir, "etcdutl"), path.join(etcdutlDir, "etcdutl"));
  // …and the link the scripts use (ETCDUTL_PATH), as backup-install.sh makes it.
  fs.symlinkSync(`etcd-v${tools.version}/etcdutl`, path.join(root, ETCDUTL_PATH.slice(1)));
  const bin = path.join(root, "test-bin");
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(
    path.join(bin, "crictl"),
    `#!/usr/bin/env bash
# crictl stand-in for ${member?.name ?? "a machine without etcd"} (tests/backup/live.ts).
root=${JSON.stringify(root)}
endpoint=${JSON.stringify(member?.clientUrl ?? "")}
case "$1" in
  ps) [ -z "$endpoint" ] || echo etcd-test ;;
  exec)
    shift 2
    tool="$1"
    shift
    args=()
    for a in "$@"; do
      a="\${a/https:\\/\\/127.0.0.1:2379/$endpoint}"
      case "$a" in
        /*) a="$root$a" ;;
        --*=/*) a="\${a%%=*}=$root/\${a#*=/}" ;;
      esac
      args+=("$a")
    done
    exec ${JSON.stringify(tools.dir)}/"$tool" "\${args[@]}" ;;
  *) exit 1 ;;
esac
`,
    { mode: 0o755 },
  );
  return bin;
}

export interface Recorded {
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
}

/**
 * GCE's metadata server, for what etcd-backup.sh asks it (scopes, token); refuses requests without
 * Metadata-Flavor. `token` is the token it hands out, or a function giving the next one.
 */
export async function startMetadataServer(
  token: string | (() => string),
  scopes: () => string[],
): Promise<{ url: string; requests: Recorded[]; close: () => Promise<void> }> {
  const requests: Recorded[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ path: req.url ?? "", headers: req.headers });
    if (req.headers["metadata-flavor"] !== "Google") return void res.writeHead(403).end("Missing Metadata-Flavor\n");
    const base = "/computeMetadata/v1/instance/service-accounts/default/";
    if (req.url === `${base}scopes`) return void res.writeHead(200).end(`${scopes().join("\n")}\n`);
    if (req.url === `${base}token`) {
      res.writeHead(200, { "Content-Type": "application/json" });
      const issued = typeof token === "string" ? token : token();
      return void res.end(JSON.stringify({ access_token: issued, expires_in: 3599, token_type: "Bearer" }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/computeMetadata/v1`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * In front of fake-gcs-server (which accepts any caller): answers 401 unless the request carries
 * the metadata server's token as a bearer token (`token`, or a function saying which are valid),
 * and 503 for uploads while `failUploads` is set. While `loseUploadResponse` is set, the next
 * upload reaches fake-gcs-server (the object is stored) but its answer is dropped (the connection
 * closed), and the token it carried expires: a success response lost on the way.
 */
export async function startAuthProxy(
  target: string,
  token: string | ((token: string) => boolean),
): Promise<{
  url: string;
  requests: Recorded[];
  failUploads: { on: boolean };
  loseUploadResponse: { on: boolean; expired: Set<string> };
  close: () => Promise<void>;
}> {
  const requests: Recorded[] = [];
  const failUploads = { on: false };
  const loseUploadResponse = { on: false, expired: new Set<string>() };
  const valid = (t: string) =>
    !loseUploadResponse.expired.has(t) && (typeof token === "string" ? t === token : token(t));
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    requests.push({ path: req.url ?? "", headers: req.headers });
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (bearer === undefined || !valid(bearer)) {
      req.resume();
      return void res.writeHead(401).end('{"error":{"code":401,"message":"Invalid Credentials"}}');
    }
    if (failUploads.on && req.url?.startsWith("/upload/")) {
      req.resume();
      return void res.writeHead(503).end('{"error":{"code":503,"message":"Backend Error"}}');
    }
    const lose = loseUploadResponse.on && req.url?.startsWith("/upload/");
    if (lose) loseUploadResponse.on = false;
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (lose) {
          answer.resume();
          answer.on("end", () => {
            loseUploadResponse.expired.add(bearer);
            res.socket?.destroy();
          });
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", () => res.writeHead(502).end());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    failUploads,
    loseUploadResponse,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** fake-gcs-server on a free loopback port (a few tries, in case another process took the port). */
export async function startFakeGcs(binary: string, log: string): Promise<string> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const out = fs.openSync(path.join(log, "fake-gcs-server.log"), "a");
    const child = track(
      spawn(
        binary,
        [
          "-scheme",
          "http",
          "-host",
          "127.0.0.1",
          "-port",
          String(port),
          "-backend",
          "memory",
          "-public-host",
          `127.0.0.1:${port}`,
        ],
        { stdio: ["ignore", out, out] },
      ),
    );
    try {
      await waitFor(
        "fake-gcs-server",
        async () => child.exitCode !== null || (await httpStatus(`${url}/storage/v1/b`)) === 200,
      );
    } catch {
      child.kill("SIGKILL");
      continue;
    }
    if (child.exitCode === null) return url;
  }
  throw new Error("fake-gcs-server did not start (see its log)");
}

export function httpStatus(url: string, method = "GET", body?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(url, { method, headers: body ? { "Content-Type": "application/json" } : {} }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve(0));
    req.end(body);
  });
}

export function httpGet(url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      })
      .on("error", reject);
  });
}
