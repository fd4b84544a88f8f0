// Cloud NAT under Pulumi mocks: dynamic port allocation with bounds (components/network.ts).

import { ProgramRun, runProgram } from "./harness";
import { readStackFile } from "../../render/project";
import { NAT_MAX_PORTS_PER_VM, NAT_MIN_PORTS_PER_VM } from "../../components/network";

let dev: ProgramRun;
beforeAll(async () => {
  dev = await runProgram(readStackFile("dev") as Record<string, string | number>);
});

test("Cloud NAT allocates ports dynamically between bounds, endpoint-independent mapping off", () => {
  const [nat] = dev.ofType("gcp:compute/routerNat:RouterNat");
  expect(nat.inputs).toMatchObject({
    enableDynamicPortAllocation: true,
    enableEndpointIndependentMapping: false,
    minPortsPerVm: NAT_MIN_PORTS_PER_VM,
    maxPortsPerVm: NAT_MAX_PORTS_PER_VM,
  });
});

test("the bounds are what the API accepts: powers of two, the minimum at least 32, the maximum above it", () => {
  const powerOfTwo = (n: number) => Number.isInteger(Math.log2(n));
  expect(powerOfTwo(NAT_MIN_PORTS_PER_VM) && powerOfTwo(NAT_MAX_PORTS_PER_VM)).toBe(true);
  expect(NAT_MIN_PORTS_PER_VM).toBeGreaterThanOrEqual(32);
  expect(NAT_MAX_PORTS_PER_VM).toBeGreaterThan(NAT_MIN_PORTS_PER_VM);
  expect(NAT_MAX_PORTS_PER_VM).toBeLessThanOrEqual(65536);
  // More than the static default of 64 from the start, and 306 VMs (300 workers) at the minimum fit one NAT address.
  expect(NAT_MIN_PORTS_PER_VM).toBeGreaterThan(64);
  expect(306 * NAT_MIN_PORTS_PER_VM).toBeLessThanOrEqual(64512);
});
