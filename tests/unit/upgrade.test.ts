// kubernetesVersion changes on a running cluster: which are upgrades, which are refused and why.

import { kubernetesVersionChange, parseKubernetesVersion } from "../../render/upgrade";
import { SUPPORTED_KUBERNETES } from "../../render/versions";

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
