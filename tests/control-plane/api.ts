// A minimal HTTPS client for the test API server, for what kubectl cannot do in-process: the fake
// kubelets' heartbeats (which must not block on a child process) and readiness polls. Credentials
// come from a kubeconfig (embedded client certificate) or a bearer token.

import * as fs from "fs";
import * as https from "https";
import { parse } from "yaml";

export interface ApiCredentials {
  readonly server: string;
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
  readonly token?: string;
}

interface Kubeconfig {
  clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
  users: { user: { "client-certificate-data"?: string; "client-key-data"?: string; token?: string } }[];
}

const fromBase64 = (value: string | undefined) => (value ? Buffer.from(value, "base64").toString() : undefined);

export function credentialsFromKubeconfig(file: string): ApiCredentials {
  const config = parse(fs.readFileSync(file, "utf8")) as Kubeconfig;
  const cluster = config.clusters[0].cluster;
  const user = config.users[0].user;
  return {
    server: cluster.server,
    ca: fromBase64(cluster["certificate-authority-data"])!,
    cert: fromBase64(user["client-certificate-data"]),
    key: fromBase64(user["client-key-data"]),
    token: user.token,
  };
}

export interface ApiResponse {
  readonly status: number;
  readonly body: string;
}

export function apiRequest(
  credentials: ApiCredentials,
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
): Promise<ApiResponse> {
  const url = new URL(path, credentials.server);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = https.request(
      url,
      {
        method,
        ca: credentials.ca,
        cert: credentials.cert,
        key: credentials.key,
        agent: false,
        timeout: 10_000,
        headers: {
          accept: "application/json",
          ...(payload === undefined ? {} : { "content-type": contentType }),
          ...(credentials.token ? { authorization: `Bearer ${credentials.token}` } : {}),
        },
      },
      (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString()));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.on("error", reject);
      },
    );
    request.on("timeout", () => request.destroy(new Error(`${method} ${path}: timed out`)));
    request.on("error", reject);
    request.end(payload);
  });
}

/** The request must succeed (2xx); returns the parsed JSON body. */
export async function apiJson<T>(
  credentials: ApiCredentials,
  method: string,
  path: string,
  body?: unknown,
  contentType?: string,
): Promise<T> {
  const response = await apiRequest(credentials, method, path, body, contentType);
  if (response.status < 200 || response.status >= 300) {
    throw new Error(`${method} ${path}: HTTP ${response.status}: ${response.body.slice(0, 500)}`);
  }
  return JSON.parse(response.body) as T;
}
