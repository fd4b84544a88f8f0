import { labColumn, withLabColumn, LabSteps } from "../../bench/lab-durations";
import { Durations } from "../../bench/model";

const steps: LabSteps = {
  recordedAt: "2026-12-05T20:00:00.000Z",
  host: "2 x test CPU, 24 GiB",
  records: [
    { id: "cp-1/init", key: "init", seconds: 15.04 },
    { id: "w-1/join", key: "join-worker", seconds: 10 },
    { id: "w-2/join", key: "join-worker", seconds: 14 },
    { id: "w-3/join", key: "join-worker", seconds: 30 },
    { id: "cp-2/join", key: "join-control-plane", seconds: 24 },
    { id: "cp-3/join", key: "join-control-plane", seconds: 40 },
  ],
};

describe("the benchmark's lab column", () => {
  test("median, fastest, slowest and count per durations.json key", () => {
    const column = labColumn(steps);
    expect(column.get("init")).toEqual({ medianSeconds: 15, minSeconds: 15, maxSeconds: 15, samples: 1 });
    expect(column.get("join-worker")).toEqual({ medianSeconds: 14, minSeconds: 10, maxSeconds: 30, samples: 3 });
    expect(column.get("join-control-plane")?.medianSeconds).toBe(32);
  });

  test("beside the modeled figure, which stays; stale lab figures go; labelled as what it is", () => {
    const durations = {
      _about: "estimates",
      init: { seconds: 90, basis: "kubeadm init" },
      "join-worker": { seconds: 30, basis: "join" },
      "join-control-plane": { seconds: 75, basis: "join" },
      verify: { seconds: 15, basis: "verify", lab: { medianSeconds: 1, minSeconds: 1, maxSeconds: 1, samples: 1 } },
    } as unknown as Durations;
    const updated = withLabColumn(durations, steps);
    expect(updated.init).toEqual({
      seconds: 90,
      basis: "kubeadm init",
      lab: { medianSeconds: 15, minSeconds: 15, maxSeconds: 15, samples: 1 },
    });
    expect(updated.verify).toEqual({ seconds: 15, basis: "verify" });
    expect((updated as unknown as Record<string, string>)._about).toBe("estimates");
    expect((updated as unknown as Record<string, string>)._lab).toMatch(/namespace machines on one host/);
  });

  test("a record whose key durations.json lacks is refused, naming it", () => {
    expect(() =>
      withLabColumn(
        { init: { seconds: 1, basis: "" } },
        { ...steps, records: [{ id: "x", key: "mystery", seconds: 1 }] },
      ),
    ).toThrow(/no entry for mystery/);
  });
});
