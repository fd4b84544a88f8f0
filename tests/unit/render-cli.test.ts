// npm run render: writes what pulumi up would put on each machine; bad config exits 1 with the
// same messages as preview; usage errors exit 2.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "../../render/project";

function render(args: string[]) {
  const result = spawnSync(
    process.execPath,
    [require.resolve("ts-node/dist/bin.js"), "--transpile-only", path.join(PROJECT_DIR, "cli/render.ts"), ...args],
    { encoding: "utf8", cwd: PROJECT_DIR },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "ha-k8s-render-"));

test("renders dev: plan.json with the nodes, haproxy.cfg, and each machine's files in run order", () => {
  const out = tmp();
  const result = render(["--stack", "dev", "--out", out]);
  expect(result.status).toBe(0);
  const plan = JSON.parse(fs.readFileSync(path.join(out, "plan.json"), "utf8"));
  expect(
    plan.nodes.map((n: { name: string; role: string; zone: string; internalIp: string }) => [
      n.role,
      n.zone,
      n.internalIp,
    ]),
  ).toEqual([
    ["loadbalancer", "europe-west1-b", "10.10.0.2"],
    ["control-plane", "europe-west1-b", "10.10.0.10"],
    ["control-plane", "europe-west1-c", "10.10.0.11"],
    ["control-plane", "europe-west1-d", "10.10.0.12"],
    ["worker", "europe-west1-b", "10.10.0.20"],
    ["worker", "europe-west1-c", "10.10.0.21"],
  ]);
  expect(fs.readFileSync(path.join(out, "loadbalancer/haproxy.cfg"), "utf8")).toContain(
    "server ha-k8s-dev-cp-3 10.10.0.12:6443",
  );
  expect(fs.readdirSync(path.join(out, "ha-k8s-dev-worker-1")).sort()).toEqual([
    "00-cloud-config.yaml",
    "01-prepare",
    "01-prepare.sh",
    "02-join",
    "02-join.on-delete.sh",
    "02-join.sh",
    "03-ready.sh",
  ]);
  // Its drain runs on the control plane it was assigned to, only when it is deleted.
  expect(fs.existsSync(path.join(out, "ha-k8s-dev-cp-1/09-removal-ha-k8s-dev-worker-1.on-delete.sh"))).toBe(true);
  // Login checks run where pulumi up runs, one per machine, before its first step.
  expect(fs.readdirSync(path.join(out, "deployer")).filter((f) => f.endsWith(".sh")).length).toBe(6);
  expect(fs.readFileSync(path.join(out, "ha-k8s-dev-cp-1/02-init/kubeadm-init.yaml"), "utf8")).toContain(
    "- load-balancer-external-ip.invalid",
  );
  expect(fs.statSync(path.join(out, "ha-k8s-dev-cp-1/02-init.sh")).mode & 0o777).toBe(0o755);
  expect(result.stderr).toMatch(/warning: ha-k8s:adminCidrs: includes 0.0.0.0\/0/);
});

test("an invalid stack exits 1 listing every problem with its key", () => {
  const project = tmp();
  fs.copyFileSync(path.join(PROJECT_DIR, "Pulumi.yaml"), path.join(project, "Pulumi.yaml"));
  fs.writeFileSync(
    path.join(project, "Pulumi.bad.yaml"),
    "config:\n  ha-k8s:controlPlaneCount: 2\n  ha-k8s:podCidr: 10.10.0.0/16\n",
  );
  const out = tmp();
  const result = render(["--stack", "bad", "--out", out, "--project-dir", project]);
  expect(result.status).toBe(1);
  expect(result.stderr).toContain('Invalid configuration for stack "bad":');
  expect(result.stderr).toMatch(/ha-k8s:controlPlaneCount: 2 is not allowed/);
  expect(result.stderr).toMatch(/ha-k8s:podCidr: "10.10.0.0\/16" overlaps ha-k8s:subnetCidr/);
  expect(fs.readdirSync(out)).toEqual([]);
});

test("usage errors exit 2", () => {
  expect(render(["--stack", "nope", "--out", tmp()]).stderr).toMatch(
    /no stack file .*Pulumi.nope.yaml; stacks in this project: dev, prod/,
  );
  expect(render(["--stack", "dev"]).status).toBe(2);
  expect(render(["--color", "x", "--stack", "dev", "--out", "y"]).stderr).toMatch(/unknown option --color/);
});
