// The plan's totals against the region's allocation quotas (render/quotas.ts), the APIs a deployment
// needs, and the sizes table in docs/operating.md.

import * as fs from "fs";
import * as path from "path";
import { renderAll } from "../../render/artifacts";
import { resolveConfig } from "../../render/config";
import { Plan, buildPlan } from "../../render/plan";
import { PROJECT_DIR, readProjectFile, readStackFile } from "../../render/project";
import { readScriptSources } from "../../render/scripts";
import {
  RegionQuotas,
  StackState,
  compareQuotas,
  cpuQuotaMetric,
  diskQuotaMetric,
  enabledServiceNames,
  heldByStack,
  missingServicesLine,
} from "../../render/quotas";
import region from "./fixtures-region-quotas.json";
import services from "./fixtures-services-enabled.json";

const planOf = (values: Record<string, unknown>): Plan =>
  buildPlan(resolveConfig({ podCidr: "10.244.0.0/14", ...values }, readProjectFile().defaults).config!);
const stackPlan = (stack: string) => buildPlan(resolveConfig(readStackFile(stack), readProjectFile().defaults).config!);

describe("which regional quota a resource counts against", () => {
  test.each([
    ["e2-medium", "CPUS"],
    ["e2-standard-4", "CPUS"],
    ["e2-small", "CPUS"],
    ["n1-standard-2", "CPUS"],
    ["custom-4-8192", "CPUS"],
    ["n2-standard-4", "N2_CPUS"],
    ["n2d-highmem-8", "N2D_CPUS"],
    ["n2-custom-4-8192", "N2_CPUS"],
    ["c3-standard-4", "C3_CPUS"],
    ["t2d-standard-2", "T2D_CPUS"],
  ])("%s: %s", (type, metric) => {
    expect(cpuQuotaMetric(type)).toBe(metric);
  });

  test("pd-balanced and pd-ssd count against SSD_TOTAL_GB, pd-standard against DISKS_TOTAL_GB", () => {
    expect(diskQuotaMetric("pd-balanced")).toBe("SSD_TOTAL_GB");
    expect(diskQuotaMetric("pd-ssd")).toBe("SSD_TOTAL_GB");
    expect(diskQuotaMetric("pd-standard")).toBe("DISKS_TOTAL_GB");
  });
});

describe("the plan's totals (plan.json)", () => {
  test("dev: 3 control planes, 2 workers, one HAProxy VM", () => {
    expect(stackPlan("dev").totals).toEqual({
      region: "europe-west1",
      instances: 6,
      vcpus: 12,
      diskGb: 300,
      internalAddresses: 6,
      externalAddresses: 1,
      quotas: {
        CPUS: 12,
        INSTANCES: 6,
        SSD_TOTAL_GB: 300,
        INTERNAL_ADDRESSES: 6,
        STATIC_ADDRESSES: 1,
        IN_USE_ADDRESSES: 1,
      },
    });
  });

  test("the render's plan.json carries them", () => {
    const config = resolveConfig(readStackFile("dev"), readProjectFile().defaults).config!;
    const planJson = renderAll(config, readScriptSources()).files.find((f) => f.path === "plan.json")!;
    expect(JSON.parse(planJson.content).totals).toEqual(stackPlan("dev").totals);
  });

  test("prod: 800 GB of pd-balanced (over a new project's 500), the endpoint address besides the VMs'", () => {
    const totals = stackPlan("prod").totals;
    expect(totals.quotas).toMatchObject({ CPUS: 3 * 2 + 3 * 4 + 2 * 2, SSD_TOTAL_GB: 800, INTERNAL_ADDRESSES: 8 + 1 });
  });

  test("3 + 100 needs 208 vCPUs and 5,200 GB; 5 + 300 reserves 306 internal addresses", () => {
    expect(planOf({ workerCount: 100 }).totals.quotas).toMatchObject({
      CPUS: 208,
      SSD_TOTAL_GB: 5200,
      INSTANCES: 104,
      INTERNAL_ADDRESSES: 104,
    });
    expect(planOf({ controlPlaneCount: 5, workerCount: 300 }).totals.quotas.INTERNAL_ADDRESSES).toBe(306);
  });

  test("N2 workers count against N2_CPUS, the E2 control planes and HAProxy VM against CPUS", () => {
    expect(planOf({ workerCount: 4, workerMachineType: "n2-standard-4" }).totals.quotas).toMatchObject({
      CPUS: 3 * 2 + 2,
      N2_CPUS: 16,
    });
  });
});

describe("the comparison with `gcloud compute regions describe` (a captured answer)", () => {
  const inUsCentral1 = (values: Record<string, unknown>) => planOf({ "gcp:region": "us-central1", ...values }).totals;

  test("3 + 2 fits a new project's quotas: no shortfall", () => {
    expect(compareQuotas(inUsCentral1({}), region as RegionQuotas)).toEqual({ shortfalls: [], unchecked: [] });
  });

  test("3 + 100: one line per quota too low, naming the metric and the amount needed", () => {
    const { shortfalls } = compareQuotas(
      inUsCentral1({ workerCount: 100 }),
      region as RegionQuotas,
      {},
      "my-project-123",
    );
    expect(shortfalls).toHaveLength(2);
    expect(shortfalls[0]).toMatch(
      /^Quota CPUS in us-central1 is too low: the plan needs 208, so 208 more; 20 free \(limit 24, in use 4\)\. Ask for at least 212 /,
    );
    expect(shortfalls[0]).toContain("https://console.cloud.google.com/iam-admin/quotas?project=my-project-123");
    expect(shortfalls[1]).toMatch(
      /^Quota SSD_TOTAL_GB in us-central1 is too low: the plan needs 5200, so 5200 more; 400 free/,
    );
    for (const line of shortfalls) expect(line).not.toContain("\n");
  });

  test("5 + 300: INTERNAL_ADDRESSES (306 of a default 200) and INSTANCES are checked too", () => {
    const { shortfalls } = compareQuotas(
      inUsCentral1({ controlPlaneCount: 5, workerCount: 300 }),
      region as RegionQuotas,
    );
    expect(shortfalls.map((l) => l.split(" ")[1])).toEqual(["CPUS", "INTERNAL_ADDRESSES", "SSD_TOTAL_GB"]);
    expect(shortfalls[1]).toContain("the plan needs 306, so 306 more; 200 free");
  });

  test("a metric the region does not report is named as not checked, not as a shortfall", () => {
    const totals = inUsCentral1({ workerMachineType: "c3-standard-4" });
    expect(compareQuotas(totals, region as RegionQuotas)).toEqual({ shortfalls: [], unchecked: ["C3_CPUS"] });
  });

  test("a running stack needs only what it adds: its own VMs and addresses are in the region's usage", () => {
    const totals = inUsCentral1({ workerCount: 10 }); // 28 vCPUs, 700 GB
    const vm = (name: string, machineType: string) => ({
      type: "gcp:compute/instance:Instance",
      inputs: {
        name,
        machineType,
        zone: "us-central1-a",
        bootDisk: { initializeParams: { size: 50, type: "pd-balanced" } },
      },
    });
    const address = (addressType: string) => ({
      type: "gcp:compute/address:Address",
      inputs: { region: "us-central1", addressType },
    });
    const state: StackState = {
      deployment: {
        resources: [
          ...["lb-1", "cp-1", "cp-2", "cp-3", "w-1", "w-2", "w-3", "w-4"].map((n) =>
            vm(n, n === "lb-1" ? "e2-small" : "e2-medium"),
          ),
          ...Array.from({ length: 8 }, () => address("INTERNAL")),
          address("EXTERNAL"),
          // Another region's VM is not this region's usage.
          { ...vm("elsewhere", "e2-medium"), inputs: { ...vm("x", "e2-medium").inputs, zone: "europe-west1-b" } },
        ],
      },
    };
    const held = heldByStack(state, "us-central1");
    expect(held).toEqual({
      CPUS: 16,
      INSTANCES: 8,
      SSD_TOTAL_GB: 400,
      INTERNAL_ADDRESSES: 8,
      STATIC_ADDRESSES: 1,
      IN_USE_ADDRESSES: 1,
    });
    // 12 more vCPUs fit the 20 free; 300 more GB fit the 400 free.
    expect(compareQuotas(totals, region as RegionQuotas, held).shortfalls).toEqual([]);
    // Without what the stack holds, the same plan would look 8 vCPUs short.
    expect(compareQuotas(totals, region as RegionQuotas).shortfalls.map((l) => l.split(" ")[1])).toEqual([
      "CPUS",
      "SSD_TOTAL_GB",
    ]);
  });
});

describe("the APIs (`gcloud services list --enabled --format=json`, a captured answer)", () => {
  test("names from config.name, or the last part of name", () => {
    expect(enabledServiceNames(services)).toEqual([
      "compute.googleapis.com",
      "oslogin.googleapis.com",
      "storage.googleapis.com",
    ]);
    expect(enabledServiceNames([{ name: "projects/1/services/iam.googleapis.com" }])).toEqual(["iam.googleapis.com"]);
  });

  test("one line naming what to enable and the command", () => {
    expect(missingServicesLine(enabledServiceNames(services), "my-project-123")).toBe(
      "Project my-project-123 does not have iam.googleapis.com enabled (pulumi up would fail with accessNotConfigured): " +
        "run 'gcloud services enable iam.googleapis.com --project my-project-123', then this again.",
    );
    expect(missingServicesLine([], "p-123456")).toContain(
      "gcloud services enable compute.googleapis.com iam.googleapis.com storage.googleapis.com --project p-123456",
    );
    expect(
      missingServicesLine(["compute.googleapis.com", "iam.googleapis.com", "storage.googleapis.com"], "p-123456"),
    ).toBeUndefined();
  });
});

test("docs/operating.md's table of what each size needs is what the plan computes", () => {
  const doc = fs.readFileSync(path.join(PROJECT_DIR, "docs", "operating.md"), "utf8");
  const start = doc.indexOf("<!-- sizes-table");
  const end = doc.indexOf("<!-- /sizes-table -->");
  expect(start).toBeGreaterThan(0);
  const rows = doc
    .slice(start, end)
    .split("\n")
    .filter((l) => /^\| \d+ \+ \d+ /.test(l))
    .map((l) => l.split("|").map((c) => c.trim().replace(/,/g, "")));
  expect(rows.map((r) => r[1])).toEqual(["3 + 2", "3 + 10", "3 + 100", "5 + 300"]);
  for (const row of rows) {
    const [cp, workers] = row[1].split(" + ").map(Number);
    const t = planOf({ controlPlaneCount: cp, workerCount: workers }).totals;
    expect(row.slice(2, 7)).toEqual(
      [t.vcpus, t.diskGb, t.instances, t.internalAddresses, t.externalAddresses].map(String),
    );
  }
});
