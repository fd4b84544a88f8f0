// haproxy.cfg for the load balancer in front of the API servers, rendered from the control-plane
// list. Pure. The same defaults/frontend/backend text serves production and the live loopback
// test; only the process settings in `global` differ (the test cannot chroot or switch users).

import { API_PORT, MONITOR_PATH, MONITOR_PORT, Plan } from "./plan";

export interface ApiServer {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

export interface HaproxyConfigInput {
  /** Where the API frontend listens; production: all addresses, port 6443. */
  readonly apiBind: { readonly address: string; readonly port: number };
  readonly servers: readonly ApiServer[];
  /**
   * Health endpoint answering 200 while at least one API server is up and 503 otherwise; GCP
   * health checks (and operators) probe it. Production: port 8404, path /healthz.
   */
  readonly monitor: { readonly address: string; readonly port: number; readonly path: string };
  readonly runtime: { readonly kind: "production" } | { readonly kind: "test"; readonly dir: string };
}

const BACKEND = "kube-apiservers";

/**
 * Timing, chosen so that a failed or not-ready API server never reaches a client:
 * - health check every 1 s, down after 2 failures, up after 2 successes: out within ~2 s;
 * - `timeout check 1s`: a hung server counts as a failure within the same interval;
 * - `retries 3` + `option redispatch 1`: a connection refused by a dead server is retried on
 *   another one, so clients see no failed new connection while the check has not noticed yet;
 * - `timeout connect 1s`: inside one VPC a connect takes milliseconds; a VM that vanished without
 *   resetting connections costs a new connection at most this long before it is redispatched
 *   (and leastconn sends many there: the dead server holds no connections);
 * - no `on-marked-down shutdown-sessions`: it would also cut a new connection that is waiting out
 *   HAProxy's retry turn-around on a server that dies at that moment (the live test caught it);
 *   sessions on a dead server end by themselves, and clients reconnect to a healthy one;
 * - client/server timeouts of 1 h: kube-apiserver ends watches after 30-60 min on its own
 *   (--min-request-timeout 1800 s, randomised up to twice that), and watches can be idle between
 *   events, so shorter timeouts would cut healthy watch streams.
 */
const TIMING = {
  inter: "1s",
  fall: 2,
  rise: 2,
  checkTimeout: "1s",
  connectTimeout: "1s",
  clientServerTimeout: "1h",
  retries: 3,
};

function validate(input: HaproxyConfigInput): void {
  const problems: string[] = [];
  if (input.servers.length === 0) problems.push("at least one API server is needed");
  const names = input.servers.map((s) => s.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate) problems.push(`server name ${duplicate} appears twice`);
  const endpoints = input.servers.map((s) => `${s.address}:${s.port}`);
  const sameEndpoint = endpoints.find((e, i) => endpoints.indexOf(e) !== i);
  if (sameEndpoint) problems.push(`${sameEndpoint} is listed twice`);
  for (const s of input.servers) {
    if (!/^[A-Za-z0-9._-]+$/.test(s.name))
      problems.push(`server name "${s.name}" has characters HAProxy does not accept`);
    if (!/^[0-9A-Za-z.:-]+$/.test(s.address))
      problems.push(`server ${s.name}: address "${s.address}" is not an address`);
  }
  for (const port of [input.apiBind.port, input.monitor.port, ...input.servers.map((s) => s.port)]) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`port ${port} is out of range`);
  }
  if (input.apiBind.port === input.monitor.port && input.apiBind.address === input.monitor.address) {
    problems.push("the API frontend and the monitor cannot share a port");
  }
  if (!input.monitor.path.startsWith("/")) problems.push(`monitor path "${input.monitor.path}" must start with /`);
  if (problems.length > 0) throw new Error(`invalid HAProxy configuration: ${problems.join("; ")}`);
}

function globalSection(runtime: HaproxyConfigInput["runtime"]): string[] {
  if (runtime.kind === "test") {
    return [
      "global",
      `    pidfile ${runtime.dir}/haproxy.pid`,
      `    stats socket ${runtime.dir}/admin.sock mode 600 level admin expose-fd listeners`,
      "    maxconn 4096",
    ];
  }
  return [
    "global",
    "    log /dev/log local0",
    "    chroot /var/lib/haproxy",
    "    user haproxy",
    "    group haproxy",
    "    daemon",
    // expose-fd listeners: a reload hands the listening sockets to the new process (no refused
    // connections); old processes finish their connections, bounded by hard-stop-after.
    "    stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners",
    "    hard-stop-after 2h",
    "    maxconn 20000",
  ];
}

export function renderHaproxyConfig(input: HaproxyConfigInput): string {
  validate(input);
  const lines = [
    "# Rendered by ha-k8s (render/haproxy.ts); edit the renderer, not this file.",
    ...globalSection(input.runtime),
    "",
    "defaults",
    "    mode tcp",
    ...(input.runtime.kind === "production" ? ["    log global", "    option tcplog", "    option dontlognull"] : []),
    `    timeout connect ${TIMING.connectTimeout}`,
    `    timeout client ${TIMING.clientServerTimeout}`,
    `    timeout server ${TIMING.clientServerTimeout}`,
    `    timeout check ${TIMING.checkTimeout}`,
    `    retries ${TIMING.retries}`,
    "    option redispatch 1",
    "",
    "frontend kube-apiserver",
    `    bind ${input.apiBind.address}:${input.apiBind.port}`,
    "    mode tcp",
    `    default_backend ${BACKEND}`,
    "",
    `backend ${BACKEND}`,
    "    mode tcp",
    // Long-lived watch connections make connection counts, not request counts, the load measure.
    "    balance leastconn",
    // HTTPS GET /readyz, certificate not verified (kubeadm allows /readyz anonymously); an API
    // server that is up but not ready (etcd unreachable, still starting) is taken out.
    "    option httpchk",
    "    http-check send meth GET uri /readyz",
    "    http-check expect status 200",
    `    default-server check check-ssl verify none inter ${TIMING.inter} fall ${TIMING.fall} rise ${TIMING.rise}`,
    ...input.servers.map((s) => `    server ${s.name} ${s.address}:${s.port}`),
    "",
    "frontend monitor",
    `    bind ${input.monitor.address}:${input.monitor.port}`,
    "    mode http",
    "    timeout client 10s",
    `    monitor-uri ${input.monitor.path}`,
    `    monitor fail if { nbsrv(${BACKEND}) lt 1 }`,
    "",
  ];
  return lines.join("\n");
}

/** The production configuration for a plan: every control plane, on its static address. */
export function renderHaproxyForPlan(
  plan: Plan,
  // Where it listens and how it runs: every address of the load balancer VM in production; the
  // endpoint's own address and a private runtime directory in the control-plane tests.
  placement: { bindAddress: string; runtime: HaproxyConfigInput["runtime"] } = {
    bindAddress: "*",
    runtime: { kind: "production" },
  },
): string {
  return renderHaproxyConfig({
    apiBind: { address: placement.bindAddress, port: API_PORT },
    servers: plan.nodes
      .filter((n) => n.role === "control-plane")
      .map((n) => ({ name: n.name, address: n.internalIp, port: API_PORT })),
    monitor: { address: placement.bindAddress, port: MONITOR_PORT, path: MONITOR_PATH },
    runtime: placement.runtime,
  });
}
