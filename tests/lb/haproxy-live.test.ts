// The rendered HAProxy configuration, live on loopback (Debian's haproxy), in front of three local
// HTTPS servers standing in for API servers. Only the process settings differ from production
// (renderHaproxyConfig's "test" runtime); defaults, frontend, backend and monitor are the same text.
// Prints the measured figures; asserts outcomes, with generous time limits.

import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { ApiServer, renderHaproxyConfig } from "../../render/haproxy";
import { freePort, requireTool, sleep } from "../tools";

const haproxyBinary = requireTool("haproxy", "haproxy");
const opensslBinary = requireTool("openssl", "openssl");
const live = haproxyBinary && opensslBinary ? describe : describe.skip;

const figures: [string, string][] = [];

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await condition()) return Date.now() - started;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** One request through HAProxy on a new connection: the backend's name, or an error. */
function request(port: number, urlPath = "/"): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: "127.0.0.1", port, path: urlPath, rejectUnauthorized: false, agent: false, timeout: 5000 },
      (res) => {
        let body = "";
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => resolve(body));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

function monitorStatus(port: number): Promise<number> {
  return new Promise((resolve) => {
    http
      .get({ host: "127.0.0.1", port, path: "/healthz", agent: false, timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on("error", () => resolve(0));
  });
}

live("HAProxy live on loopback", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ha-k8s-lb-"));
  const backends = new Map<string, { port: number; process?: ChildProcess }>();
  let frontendPort = 0;
  let monitorPort = 0;
  let haproxy: ChildProcess | undefined;
  const configFile = path.join(dir, "haproxy.cfg");

  const servers = (names: readonly string[]): ApiServer[] =>
    names.map((name) => ({ name, address: "127.0.0.1", port: backends.get(name)!.port }));
  const writeConfig = (names: readonly string[]) =>
    fs.writeFileSync(
      configFile,
      renderHaproxyConfig({
        apiBind: { address: "127.0.0.1", port: frontendPort },
        servers: servers(names),
        monitor: { address: "127.0.0.1", port: monitorPort, path: "/healthz" },
        runtime: { kind: "test", dir },
      }),
    );

  async function startBackend(name: string): Promise<void> {
    const entry = backends.get(name)!;
    const child = spawn(process.execPath, [path.join(__dirname, "backend.js"), name, String(entry.port), dir], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    entry.process = child;
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`backend ${name} exited with ${code}`)));
    });
  }

  const setReady = (name: string, ready: boolean) => {
    const marker = path.join(dir, `${name}.unready`);
    if (ready) fs.rmSync(marker, { force: true });
    else fs.writeFileSync(marker, "");
  };

  /** Sends `count` sequential requests on new connections; returns where they landed and failures. */
  async function burst(count: number): Promise<{ hits: Map<string, number>; failures: number }> {
    const hits = new Map<string, number>();
    let failures = 0;
    for (let i = 0; i < count; i++) {
      try {
        const name = await request(frontendPort);
        hits.set(name, (hits.get(name) ?? 0) + 1);
      } catch {
        failures++;
      }
    }
    return { hits, failures };
  }

  beforeAll(async () => {
    execFileSync(opensslBinary!, [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=kube-apiserver", "-keyout", path.join(dir, "tls.key"), "-out", path.join(dir, "tls.crt"),
    ], { stdio: "ignore" }); // prettier-ignore
    for (const name of ["cp-1", "cp-2", "cp-3"]) {
      backends.set(name, { port: await freePort() });
      await startBackend(name);
    }
    frontendPort = await freePort();
    monitorPort = await freePort();
    writeConfig(["cp-1", "cp-2", "cp-3"]);
    execFileSync(haproxyBinary!, ["-c", "-f", configFile], { stdio: "pipe" });
    // Master-worker mode, in the foreground, as systemd runs it (-Ws): SIGUSR2 reloads.
    haproxy = spawn(haproxyBinary!, ["-W", "-db", "-f", configFile], { stdio: "ignore" });
    const took = await waitFor("all three servers UP", async () => (await burst(9)).hits.size === 3, 15000);
    figures.push(["backends healthy after start", `${took} ms`]);
  });

  afterAll(async () => {
    haproxy?.kill("SIGKILL");
    for (const { process: child } of backends.values()) child?.kill("SIGKILL");
    await sleep(100);
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(`HAProxy live test, measured:\n${figures.map(([k, v]) => `  ${k.padEnd(58)} ${v}`).join("\n")}`);
  });

  test("spreads new connections over all three API servers", async () => {
    const { hits, failures } = await burst(30);
    expect(failures).toBe(0);
    expect([...hits.keys()].sort()).toEqual(["cp-1", "cp-2", "cp-3"]);
    figures.push(["spread of 30 requests", [...hits].map(([k, v]) => `${k}=${v}`).join(" ")]);
  });

  test("an API server answering 500 on /readyz is taken out within a few seconds", async () => {
    setReady("cp-2", false);
    const flipped = Date.now();
    const took = await waitFor("cp-2 to receive no requests", async () => !(await burst(6)).hits.has("cp-2"), 10000);
    figures.push(["not-ready server out of rotation after", `${took} ms (≤ ${Date.now() - flipped} ms)`]);
    const after = await burst(30);
    expect(after.hits.has("cp-2")).toBe(false);
    expect(after.failures).toBe(0);
    setReady("cp-2", true);
    await waitFor("cp-2 back", async () => (await burst(6)).hits.has("cp-2"), 10000);
  });

  test("a server killed outright fails no new request", async () => {
    // A request already in flight on the killed server when it dies cannot be saved (its TCP
    // connection is gone); every request that starts after the kill must succeed.
    let stop = false;
    let killedAt = Number.POSITIVE_INFINITY;
    const started: number[] = [];
    const failedStarts: number[] = [];
    const loop = (async () => {
      while (!stop) {
        const at = Date.now();
        started.push(at);
        try {
          await request(frontendPort);
        } catch {
          failedStarts.push(at);
        }
      }
    })();
    await sleep(500);
    // "After the kill" starts when the process is gone (the signal is delivered asynchronously).
    const victim = backends.get("cp-3")!.process!;
    const exited = new Promise<void>((resolve) => victim.once("exit", () => resolve()));
    victim.kill("SIGKILL");
    await exited;
    killedAt = Date.now();
    await sleep(4000); // through detection (fall 2 x inter 1 s) and beyond
    stop = true;
    await loop;
    const newRequests = started.filter((at) => at > killedAt).length;
    const newFailures = failedStarts.filter((at) => at > killedAt).length;
    figures.push([
      "requests started after killing a server",
      `${newRequests}, ${newFailures} failed (${failedStarts.length - newFailures} in flight at the kill failed)`,
    ]);
    expect(newRequests).toBeGreaterThan(20);
    expect(newFailures).toBe(0);
  });

  test("a restarted server is taken back", async () => {
    await startBackend("cp-3");
    const took = await waitFor("cp-3 to receive requests again", async () => (await burst(6)).hits.has("cp-3"), 15000);
    figures.push(["restarted server back in rotation after", `${took} ms`]);
  });

  test("the monitor endpoint answers 200 while any server is ready, 503 once none is, 200 again after", async () => {
    expect(await monitorStatus(monitorPort)).toBe(200);
    for (const name of backends.keys()) setReady(name, false);
    const down = await waitFor("monitor 503", async () => (await monitorStatus(monitorPort)) === 503, 10000);
    for (const name of backends.keys()) setReady(name, true);
    const up = await waitFor("monitor 200", async () => (await monitorStatus(monitorPort)) === 200, 10000);
    figures.push(["monitor 503 after the last server went unready", `${down} ms`]);
    figures.push(["monitor 200 after recovery", `${up} ms`]);
    await waitFor("all three back", async () => (await burst(9)).hits.size === 3, 15000);
  });

  test("a reload with a new server list keeps an open stream and routes new connections by the new list", async () => {
    const streamed = new Promise<string>((resolve, reject) =>
      https
        .get(
          { host: "127.0.0.1", port: frontendPort, path: "/stream", rejectUnauthorized: false, agent: false },
          (res) => {
            let body = "";
            res.on("data", (chunk) => (body += chunk));
            res.on("end", () => resolve(body));
            res.on("error", reject);
          },
        )
        .on("error", reject),
    );
    await sleep(300);
    writeConfig(["cp-2", "cp-3"]); // cp-1 leaves the control plane
    execFileSync(haproxyBinary!, ["-c", "-f", configFile], { stdio: "pipe" });
    haproxy!.kill("SIGUSR2");
    await sleep(1000);
    const after = await burst(20);
    const body = await streamed;
    const chunks = body.trim().split("\n");
    figures.push(["open stream across the reload", `${chunks.length}/20 chunks`]);
    expect(chunks).toHaveLength(20);
    expect(after.failures).toBe(0);
    expect(after.hits.has("cp-1")).toBe(false);
    figures.push(["after reload, 20 requests", [...after.hits].map(([k, v]) => `${k}=${v}`).join(" ")]);
  });
});
