// kubernetesVersion changes on a running cluster: which are upgrades, which are refused and why.

import { resolveConfig } from "../../render/config";
import { buildPlan } from "../../render/plan";
import { readProjectFile } from "../../render/project";
import { readScriptSources } from "../../render/scripts";
import { renderStepCommand, stepTimeouts } from "../../render/steps";
import { kubernetesVersionChange, parseKubernetesVersion, upgradeAddonVersions } from "../../render/upgrade";
import { SUPPORTED_KUBERNETES, asPatchVersion, minorOfVersion } from "../../render/versions";

const pin = (minor: string) => SUPPORTED_KUBERNETES[minor].patch;

describe("kubernetesVersion changes", () => {
  test("a first deployment is no change", () => {
    expect(kubernetesVersionChange(undefined, "1.36")).toEqual({ kind: "none", patch: pin("1.36") });
  });

  test("the same pinned patch is no change", () => {
    expect(kubernetesVersionChange(pin("1.36"), "1.36")).toEqual({ kind: "none", patch: pin("1.36") });
    expect(kubernetesVersionChange("1.36", "1.36").kind).toBe("none");
  });

  test("the next minor is an upgrade to its pinned patch", () => {
    expect(kubernetesVersionChange(pin("1.35"), "1.36")).toEqual({
      kind: "upgrade",
      from: pin("1.35"),
      to: pin("1.36"),
    });
  });

  test("a newer pinned patch within the minor is an upgrade too", () => {
    expect(kubernetesVersionChange("1.36.1", "1.36")).toEqual({ kind: "upgrade", from: "1.36.1", to: pin("1.36") });
  });

  test.each([
    [
      pin("1.35"),
      "1.37",
      /"1.35" -> "1.37" skips a minor: kubeadm upgrades one minor at a time .*set "1.36" \(the next minor\)/,
    ],
    [pin("1.37"), "1.36", /older than the deployed 1\.37\.\d+: downgrades are not supported.*keep "1.37"/],
    ["1.36.9", "1.36", /older than the deployed 1\.36\.9: downgrades are not supported/],
    ["1.30.0", "1.36", /"1.30" -> "1.36" skips a minor/],
    ["banana", "1.36", /not a Kubernetes version/],
  ])("%s -> %s is refused, naming the allowed next step", (deployed, target, message) => {
    const change = kubernetesVersionChange(deployed, target);
    expect(change.kind).toBe("refused");
    expect(change.kind === "refused" && change.problem).toMatch(message);
  });

  test("versions parse with or without v and patch", () => {
    expect(parseKubernetesVersion("v1.36.3")).toEqual({ major: 1, minor: 36, patch: 3 });
    expect(parseKubernetesVersion("1.37")).toEqual({ major: 1, minor: 37, patch: undefined });
    expect(parseKubernetesVersion("1.x")).toBeUndefined();
  });
});

describe("the upgrade's step graph", () => {
  const planOf = (values: Record<string, unknown>, deployed: string) =>
    buildPlan(resolveConfig(values, readProjectFile().defaults).config!, { kubernetesVersion: deployed });
  const upgrade = planOf({ kubernetesVersion: "1.37", workerCount: 7, maxUnavailable: 3 }, pin("1.36"));
  const step = (id: string) => upgrade.steps.find((s) => s.id === id)!;

  test("no upgrade steps when the version does not change", () => {
    const same = planOf({ kubernetesVersion: "1.36" }, pin("1.36"));
    expect(same.upgrade).toBeUndefined();
    expect(same.steps.filter((s) => s.kind.startsWith("upgrade"))).toEqual([]);
  });

  test("control planes one at a time after the snapshot and the verified cluster, the first applying", () => {
    expect(upgrade.upgrade).toEqual({
      from: pin("1.36"),
      to: pin("1.37"),
      maxUnavailable: 3,
      drainTimeoutSeconds: 900,
    });
    expect(step("ha-k8s-cp-1/upgrade").dependsOn).toEqual(["cluster/snapshot", "cluster/verify"]);
    expect(step("ha-k8s-cp-2/upgrade").dependsOn).toEqual(["ha-k8s-cp-1/upgrade"]);
    expect(step("ha-k8s-cp-3/upgrade").dependsOn).toEqual(["ha-k8s-cp-2/upgrade"]);
  });

  test("workers after every control plane, at most maxUnavailable at once, each drained, upgraded, uncordoned", () => {
    const workers = upgrade.steps.filter((s) => s.kind === "upgrade-drain");
    // The first maxUnavailable drains start together, right after the last control plane.
    expect(workers.filter((s) => s.dependsOn.includes("ha-k8s-cp-3/upgrade")).map((s) => s.subject)).toEqual([
      "ha-k8s-worker-1",
      "ha-k8s-worker-2",
      "ha-k8s-worker-3",
    ]);
    // Each later one waits for the uncordon of the worker before it in its lane.
    expect(step("ha-k8s-worker-4/upgrade-drain").dependsOn).toEqual(["ha-k8s-worker-1/upgrade-uncordon"]);
    expect(step("ha-k8s-worker-7/upgrade-drain").dependsOn).toEqual(["ha-k8s-worker-4/upgrade-uncordon"]);
    expect(step("ha-k8s-worker-4/upgrade").dependsOn).toEqual(["ha-k8s-worker-4/upgrade-drain"]);
    expect(step("ha-k8s-worker-4/upgrade-uncordon").dependsOn).toEqual(["ha-k8s-worker-4/upgrade"]);
    // Drains and uncordons run on the worker's control plane; the upgrade on the worker itself.
    expect(step("ha-k8s-worker-5/upgrade-drain").node).toBe("ha-k8s-cp-2");
    expect(step("ha-k8s-worker-5/upgrade").node).toBe("ha-k8s-worker-5");
    expect([...step("cluster/upgrade-verify").dependsOn].sort()).toEqual([
      "ha-k8s-worker-5/upgrade-uncordon",
      "ha-k8s-worker-6/upgrade-uncordon",
      "ha-k8s-worker-7/upgrade-uncordon",
    ]);
  });

  test("never more than maxUnavailable workers out of service at once, whatever the durations", () => {
    // Earliest-start schedule of the upgrade's steps with random durations: a worker is out of
    // service from its drain's start to its uncordon's end.
    let seed = 11;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const ids = new Set(upgrade.steps.map((s) => s.id));
    for (let trial = 0; trial < 50; trial++) {
      const finish = new Map<string, number>();
      const start = new Map<string, number>();
      const end = (id: string): number => {
        if (!finish.has(id)) {
          const s = step(id);
          const begin = Math.max(
            0,
            ...s.dependsOn.filter((d) => ids.has(d) && step(d).kind.startsWith("upgrade")).map(end),
          );
          start.set(id, begin);
          finish.set(id, begin + 1 + random() * 100);
        }
        return finish.get(id)!;
      };
      const out = upgrade.steps
        .filter((s) => s.kind === "upgrade-drain")
        .map((s) => {
          const outUntil = end(`${s.subject}/upgrade-uncordon`); // schedules the drain too
          return [start.get(s.id)!, outUntil] as const;
        });
      const peak = Math.max(...out.map(([from]) => out.filter(([a, b]) => a <= from && from < b).length));
      expect([trial, peak]).toEqual([trial, 3]);
    }
  });

  test("the render is told the deployed version and refuses what preview refuses", () => {
    expect(() => planOf({ kubernetesVersion: "1.37" }, pin("1.35"))).toThrow(/skips a minor/);
  });
});

test("versions as the plan reads them: a minor alone is its pinned patch, or .0 once no longer pinned", () => {
  expect(asPatchVersion("1.36")).toBe(SUPPORTED_KUBERNETES["1.36"].patch);
  expect(asPatchVersion("v1.35.2")).toBe("1.35.2");
  expect(asPatchVersion("1.20")).toBe("1.20.0");
  expect(["v1.36.3", "1.36.3", "1.36"].map(minorOfVersion)).toEqual(["1.36", "1.36", "1.36"]);
  // The upgrade's "from" and the plan's creation version agree, for an unpinned minor too.
  const change = kubernetesVersionChange("1.34", "1.35");
  expect(change).toEqual({ kind: "upgrade", from: "1.34.0", to: SUPPORTED_KUBERNETES["1.35"].patch });
});

test("how long Pulumi lets a step run: drainTimeoutSeconds more only for the steps that drain", () => {
  const cfg = resolveConfig(
    { kubernetesVersion: "1.36", clusterName: "c", drainTimeoutSeconds: 1800 },
    readProjectFile().defaults,
  ).config!;
  const plan = buildPlan(cfg, { kubernetesVersion: pin("1.35") });
  const timeout = (id: string) =>
    stepTimeouts(
      plan,
      plan.steps.find((s) => s.id === id)!,
    ).create;
  // A control plane drains itself in its upgrade step; a worker is drained in its own step.
  expect(timeout("c-cp-1/upgrade")).toBe("70m");
  expect(timeout("c-worker-1/upgrade-drain")).toBe("70m");
  expect(timeout("c-worker-1/upgrade")).toBe("40m");
  expect(timeout("c-worker-1/upgrade-uncordon")).toBe("40m");
  expect(timeout("c-worker-1/prepare")).toBe("40m");
  // The delete commands' own `timeout 300`, with a margin.
  expect(stepTimeouts(plan, plan.steps[0]).delete).toBe("10m");
});

describe("what the upgrade's verification expects of kubeadm's addons", () => {
  // kubeadm's constants.CoreDNSVersion of each pinned patch (`kubeadm config images list`, checked
  // with the real kubeadm 1.35.4, 1.36.3 and 1.37.2).
  test.each([
    ["1.35", "v1.13.1"],
    ["1.36", "v1.14.2"],
    ["1.37", "v1.14.6"],
  ])("%s: CoreDNS %s, kube-proxy at the patch", (minor, coredns) => {
    expect(SUPPORTED_KUBERNETES[minor].corednsVersion).toBe(coredns);
    expect(upgradeAddonVersions(pin(minor))).toEqual({
      COREDNS_VERSION: coredns,
      KUBE_PROXY_VERSION: `v${pin(minor)}`,
    });
  });

  test("the rendered upgrade-verify step passes them to verify.sh; the other steps' inputs do not change", () => {
    const config = resolveConfig({ kubernetesVersion: "1.37", clusterName: "c" }, readProjectFile().defaults).config!;
    const plan = buildPlan(config, { kubernetesVersion: pin("1.36") });
    const sources = readScriptSources();
    const bundleOf = (id: string) =>
      renderStepCommand(
        config,
        plan,
        plan.steps.find((s) => s.id === id)!,
        undefined,
        sources,
      ).bundle!;
    const envOf = (bundle: string, name: string) => new RegExp(`^${name}='([^']*)'$`, "m").exec(bundle)?.[1];
    const verify = bundleOf("cluster/upgrade-verify");
    expect(envOf(verify, "K8S_VERSION")).toBe(`v${pin("1.37")}`);
    expect(envOf(verify, "KUBE_PROXY_VERSION")).toBe(`v${pin("1.37")}`);
    expect(envOf(verify, "COREDNS_VERSION")).toBe("v1.14.6");
    for (const id of ["c-cp-1/upgrade", "c-worker-1/upgrade", "cluster/verify"]) {
      expect(envOf(bundleOf(id), "COREDNS_VERSION")).toBeUndefined();
    }
    // The last control plane's step is the one kubeadm upgrades the addons in.
    const last = plan.steps.filter((s) => s.kind === "upgrade" && s.subject.startsWith("c-cp-")).pop()!;
    expect(last.description).toMatch(/with CoreDNS and kube-proxy: the last control plane/);
  });
});
