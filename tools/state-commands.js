#!/usr/bin/env node
// Reads `pulumi stack export --show-secrets` (a file path argument) and prints, for every remote
// command still in the state, one tab-separated line: URN, host, jump host (or "-"), user. Writes
// the commands' SSH private key to the file named by the second argument (mode 0600), for the
// reachability check in tools/destroy.sh. Plain Node.js, no dependencies.
//
// A command's `connection` input is a secret (the provider marks it so); with --show-secrets the
// export carries a secret as {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
// "plaintext": "<JSON>"}. A secret still encrypted (no "plaintext") cannot be read: its command is
// reported with host "?", so it is never taken for unreachable.
"use strict";
const fs = require("fs");

const SIG = "4dabf18193072939515e22adb298388d";
function reveal(value) {
  if (value && typeof value === "object" && value[SIG] !== undefined) {
    return typeof value.plaintext === "string" ? reveal(JSON.parse(value.plaintext)) : undefined;
  }
  if (Array.isArray(value)) return value.map(reveal);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, reveal(v)]));
  }
  return value;
}

const [statePath, keyPath] = process.argv.slice(2);
if (!statePath || !keyPath) {
  console.error("usage: state-commands.js <stack export file> <private key file to write>");
  process.exit(2);
}
const resources = JSON.parse(fs.readFileSync(statePath, "utf8")).deployment?.resources ?? [];
let keyWritten = false;
for (const resource of resources) {
  if (resource.type !== "command:remote:Command" || resource.delete) continue; // pending deletes too
  const connection = reveal(resource.inputs?.connection) ?? {};
  if (!keyWritten && typeof connection.privateKey === "string") {
    fs.writeFileSync(keyPath, connection.privateKey, { mode: 0o600 });
    keyWritten = true;
  }
  const host = typeof connection.host === "string" ? connection.host : "?";
  const jump = typeof connection.proxy?.host === "string" ? connection.proxy.host : "-";
  console.log([resource.urn, host, jump, connection.user ?? "root"].join("\t"));
}
