// `haproxy -c` (Debian's haproxy, installed by tools/setup.sh) on the production config of every
// stack in the repository.

import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolveConfig } from "../../render/config";
import { listStacks, readProjectFile, readStackFile } from "../../render/project";
import { buildPlan } from "../../render/plan";
import { renderHaproxyForPlan } from "../../render/haproxy";
import { requireTool } from "../tools";

const haproxy = requireTool("haproxy", "haproxy");

(haproxy ? describe : describe.skip)("haproxy -c", () => {
  test.each(listStacks())("accepts the production config of stack %s", (stack) => {
    const config = resolveConfig(readStackFile(stack), readProjectFile().defaults).config!;
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "haproxy-")), "haproxy.cfg");
    fs.writeFileSync(file, renderHaproxyForPlan(buildPlan(config)));
    const result = spawnSync(haproxy!, ["-c", "-f", file], { encoding: "utf8" });
    expect(`${result.stdout}${result.stderr}`).toContain("Configuration file is valid");
    expect(result.status).toBe(0);
  });

  test("rejects a broken config (the check can fail)", () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "haproxy-")), "haproxy.cfg");
    fs.writeFileSync(file, "defaults\n    mode tcp\nbackend x\n    balance nonsense\n");
    expect(() => execFileSync(haproxy!, ["-c", "-f", file], { stdio: "pipe" })).toThrow();
  });
});
