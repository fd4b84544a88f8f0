// Runs index.ts under the unit tests' mocks (tests/unit/mocks.ts) in a plain Node process, as the
// Pulumi language host would (ts-node), and prints what it cost: bench/run.ts starts one per size.
// Usage: ts-node --transpile-only bench/run-program.ts '<json: {values, previousOutputs}>' [--stats]

import * as pulumi from "@pulumi/pulumi";
import { ConfigValues, mockResponse, stackConfig, unwrapSecrets } from "../tests/unit/mocks";

async function main(): Promise<void> {
  const { values, previousOutputs } = JSON.parse(process.argv[2] ?? "{}") as {
    values?: ConfigValues;
    previousOutputs?: Record<string, unknown>;
  };
  let registered = 0;
  pulumi.runtime.setAllConfig(stackConfig(values ?? {}));
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered++;
        return mockResponse(
          args.type,
          args.name,
          unwrapSecrets(args.inputs).value as Record<string, unknown>,
          previousOutputs,
        );
      },
      call: (args) => args.inputs,
    },
    "ha-k8s",
    "test",
    false,
    "organization",
  );
  const started = process.hrtime.bigint();
  const program: Record<string, unknown> = await (await import("../index")).default();
  for (const value of Object.values(program)) {
    if (pulumi.Output.isInstance(value)) await (value as unknown as { promise(): Promise<unknown> }).promise();
  }
  // Registrations finish asynchronously: wait until the count stops moving.
  for (let last = -1; last !== registered;) {
    last = registered;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log("program completed");

  if (process.argv.includes("--stats")) {
    const stats = { seconds, resources: registered, maxRssBytes: process.resourceUsage().maxRSS * 1024 };
    console.log(`STATS ${JSON.stringify(stats)}`);
  }
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
