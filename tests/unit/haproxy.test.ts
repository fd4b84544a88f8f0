import { HaproxyConfigInput, renderHaproxyConfig, renderHaproxyForPlan } from "../../render/haproxy";
import { resolveConfig } from "../../render/config";
import { readProjectFile } from "../../render/project";
import { buildPlan } from "../../render/plan";

const plan = buildPlan(resolveConfig({ controlPlaneCount: 5 }, readProjectFile().defaults).config!);
const base: HaproxyConfigInput = {
  apiBind: { address: "*", port: 6443 },
  servers: [{ name: "a", address: "10.0.0.1", port: 6443 }],
  monitor: { address: "*", port: 8404, path: "/healthz" },
  runtime: { kind: "production" },
};

test("every control plane is a server on its static address, and nothing else is", () => {
  const cfg = renderHaproxyForPlan(plan);
  const servers = cfg.split("\n").filter((l) => l.trim().startsWith("server "));
  expect(servers.map((l) => l.trim())).toEqual(
    [1, 2, 3, 4, 5].map((i) => `server ha-k8s-cp-${i} 10.10.0.${9 + i}:6443`),
  );
});

test("TCP on 6443 with an HTTPS /readyz check, fast detection, retries and redispatch", () => {
  const cfg = renderHaproxyForPlan(plan);
  expect(cfg).toMatch(/frontend kube-apiserver\n\s+bind \*:6443\n\s+mode tcp/);
  expect(cfg).toContain("option httpchk\n    http-check send meth GET uri /readyz\n    http-check expect status 200");
  expect(cfg).toMatch(/default-server check check-ssl verify none inter 1s fall 2 rise 2$/m);
  expect(cfg).toMatch(/retries 3\n\s+option redispatch 1/);
  expect(cfg).toMatch(/timeout client 1h\n\s+timeout server 1h/);
});

test("a monitor endpoint fails when no API server is up", () => {
  const cfg = renderHaproxyForPlan(plan);
  expect(cfg).toMatch(
    /frontend monitor\n\s+bind \*:8404\n\s+mode http[\s\S]*monitor-uri \/healthz\n\s+monitor fail if \{ nbsrv\(kube-apiservers\) lt 1 \}/,
  );
});

test("the test runtime changes only the global section", () => {
  const production = renderHaproxyConfig(base);
  const test = renderHaproxyConfig({ ...base, runtime: { kind: "test", dir: "/tmp/x" } });
  const afterGlobal = (cfg: string) =>
    cfg.slice(cfg.indexOf("defaults")).replace(/\n\s+(log global|option tcplog|option dontlognull)/g, "");
  expect(afterGlobal(test)).toBe(afterGlobal(production));
  expect(test).not.toContain("chroot");
  expect(test).toContain("pidfile /tmp/x/haproxy.pid");
});

test.each<[string, Partial<HaproxyConfigInput>, RegExp]>([
  ["no servers", { servers: [] }, /at least one API server/],
  ["duplicate names", { servers: [base.servers[0], base.servers[0]] }, /appears twice/],
  [
    "one API server under two names",
    { servers: [base.servers[0], { ...base.servers[0], name: "b" }] },
    /10.0.0.1:6443 is listed twice/,
  ],
  ["bad name", { servers: [{ name: "a b", address: "10.0.0.1", port: 6443 }] }, /characters/],
  ["bad port", { servers: [{ name: "a", address: "10.0.0.1", port: 70000 }] }, /out of range/],
  ["monitor on the API port", { monitor: { address: "*", port: 6443, path: "/healthz" } }, /share a port/],
])("rejects %s", (_name, change, message) => {
  expect(() => renderHaproxyConfig({ ...base, ...change })).toThrow(message);
});
