// README's configuration table must say what Pulumi.yaml says: same keys, types, defaults and
// descriptions. Edit Pulumi.yaml and the table together.

import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR, readProjectFile } from "../../render/project";

const readme = fs.readFileSync(path.join(PROJECT_DIR, "README.md"), "utf8");
const schema = readProjectFile().schema;

function configTable(): Map<string, { type: string; default: string; description: string }> {
  const start = readme.indexOf("<!-- config-table");
  const end = readme.indexOf("<!-- /config-table -->");
  if (start < 0 || end < 0) throw new Error("README.md has no config-table markers");
  const rows = new Map<string, { type: string; default: string; description: string }>();
  for (const line of readme.slice(start, end).split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const key = /^`([A-Za-z]+)`$/.exec(cells[1] ?? "")?.[1];
    if (!key) continue;
    rows.set(key, { type: cells[2], default: cells[3].replace(/^`|`$/g, ""), description: cells[4] });
  }
  return rows;
}

test("the README config table lists exactly the keys of Pulumi.yaml", () => {
  expect([...configTable().keys()].sort()).toEqual(Object.keys(schema).sort());
});

test.each(Object.keys(schema))("README row for %s matches Pulumi.yaml", (key) => {
  const row = configTable().get(key)!;
  const entry = schema[key];
  const shown = typeof entry.default === "string" ? entry.default : JSON.stringify(entry.default);
  expect(row).toEqual({ type: entry.type, default: shown, description: entry.description });
});
