// Reads the machine scripts (scripts/*.sh) that the bundles carry. I/O only; no Pulumi.

import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "./project";

export const SCRIPTS_DIR = path.join(PROJECT_DIR, "scripts");

export function readScriptSources(dir: string = SCRIPTS_DIR): Record<string, string> {
  const sources: Record<string, string> = {};
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".sh"))) {
    sources[file] = fs.readFileSync(path.join(dir, file), "utf8");
  }
  return sources;
}
