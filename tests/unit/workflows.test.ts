// What the GitHub workflows must do that actionlint cannot see: jobs that reach machines run on
// the stack's runner variable and stop at once without it, deploys and destroys go through the
// same commands as on a laptop (npm run deploy/destroy: stack created, project from the
// environment, parallelism from the plan), and previews create a missing stack and say so.

import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { PROJECT_DIR } from "../../render/project";

interface Step {
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Job {
  "runs-on": string;
  steps: Step[];
  env?: Record<string, string>;
}
const workflow = (name: string): { jobs: Record<string, Job> } =>
  parse(fs.readFileSync(path.join(PROJECT_DIR, ".github/workflows", `${name}.yml`), "utf8"));

describe.each([
  ["deploy", "dev", "dev"],
  ["deploy", "prod", "prod"],
])("%s job %s", (file, job, stack) => {
  const j = workflow(file).jobs[job];
  const variable = `HA_K8S_RUNNER_${stack.toUpperCase()}`;

  test("runs on the stack's runner and fails first, in one line, without it", () => {
    expect(j["runs-on"]).toContain(`vars.${variable}`);
    const [first] = j.steps;
    expect(first.if).toBe(`vars.${variable} == ''`);
    expect(first.run).toMatch(new RegExp(`::error::Set the repository variable ${variable} .*adminCidrs`));
    expect(first.run).toMatch(/exit 1/);
  });

  test("deploys with npm run deploy (stack created, project from the environment, parallelism from the plan)", () => {
    const deploy = j.steps.find((s) => s.run?.includes("npm run deploy"));
    expect(deploy?.run).toContain(`npm run deploy -- ${stack} --yes`);
    expect(deploy?.run).toContain(`--policy-pack-config policy/${stack}.json`);
    expect(j.env?.PULUMI_BACKEND_URL).toBe("${{ secrets.PULUMI_BACKEND_URL }}");
    expect(j.steps.some((s) => s.uses?.startsWith("google-github-actions/auth"))).toBe(true);
  });
});

test("destroy runs npm run destroy on the chosen stack's runner, failing at once without it", () => {
  const j = workflow("destroy").jobs.destroy;
  expect(j["runs-on"]).toContain("vars.HA_K8S_RUNNER_PROD");
  expect(j["runs-on"]).toContain("vars.HA_K8S_RUNNER_DEV");
  expect(j.steps[0].if).toContain("vars.HA_K8S_RUNNER_PROD == ''");
  expect(j.steps[0].run).toMatch(/::error::Set the repository variable HA_K8S_RUNNER_/);
  expect(j.steps.find((s) => s.run?.includes("npm run destroy"))?.run).toContain('npm run destroy -- "$STACK" --yes');
});

test("preview creates a missing stack, says so, and previews with the plan's parallelism", () => {
  const j = workflow("preview").jobs.preview;
  const check = j.steps.find((s) => s.run?.includes("pulumi stack select"))!;
  expect(check.run).toMatch(/::notice::Stack \$STACK does not exist yet/);
  expect(check.run).toContain("npm run --silent parallel -- --stack");
  const preview = j.steps.find((s) => s.with?.command === "preview")!;
  expect(preview.with).toMatchObject({ upsert: true, parallel: "${{ steps.stack.outputs.parallel }}" });
});
