// Runs index.ts under Pulumi mocks in a plain Node process, outside jest, so a program that fails
// the way Pulumi programs fail (an Output whose computation throws, surfacing as an unhandled
// rejection) can be observed as the runtime would: non-zero exit and the message on stderr.
// Usage: ts-node --transpile-only tests/unit/run-program.ts '<json: {values, previousOutputs}>'

import * as pulumi from "@pulumi/pulumi";
import { ConfigValues, mockResponse, stackConfig, unwrapSecrets } from "./mocks";

async function main(): Promise<void> {
  const { values, previousOutputs } = JSON.parse(process.argv[2] ?? "{}") as {
    values?: ConfigValues;
    previousOutputs?: Record<string, unknown>;
  };
  pulumi.runtime.setAllConfig(stackConfig(values ?? {}));
  await pulumi.runtime.setMocks(
    {
      newResource: (args) =>
        mockResponse(
          args.type,
          args.name,
          unwrapSecrets(args.inputs).value as Record<string, unknown>,
          previousOutputs,
        ),
      call: (args) => args.inputs,
    },
    "ha-k8s",
    "test",
    false,
    "organization",
  );
  const program = (await import("../../index")) as Record<string, unknown>;
  for (const value of Object.values(program)) {
    if (pulumi.Output.isInstance(value)) await (value as unknown as { promise(): Promise<unknown> }).promise();
  }
  console.log("program completed");
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
