// Stack config → one validated ClusterConfig, before any resource is registered. The checks and
// messages live in render/config.ts, shared with the offline render; this file only adapts the
// Pulumi runtime's view of the config to it.

import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig, formatIssues, resolveConfig } from "../render/config";
import { normaliseStackValues, readProjectFile } from "../render/project";

/**
 * Where the GCP provider looks for the project when gcp:project is not set, in its order
 * (pulumi-gcp provider/resources.go, Config["project"].Default.EnvVars; terraform-provider-google
 * transport/config.go HandleSDKDefaults). google-github-actions/auth exports the middle ones.
 */
export const PROJECT_ENVIRONMENT = [
  "GOOGLE_PROJECT",
  "GOOGLE_CLOUD_PROJECT",
  "GCLOUD_PROJECT",
  "CLOUDSDK_CORE_PROJECT",
];

export function projectFromEnvironment(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return PROJECT_ENVIRONMENT.map((name) => env[name]).find((value) => value !== undefined && value !== "");
}

/**
 * Reads every config value of the stack (Pulumi.yaml defaults included, read from the file because
 * the runtime applies them only under the CLI), validates, logs warnings and throws one RunError
 * listing every problem.
 */
export function loadClusterConfig(options: { requireProject?: boolean } = {}): ClusterConfig {
  const project = readProjectFile();
  const values = normaliseStackValues(pulumi.runtime.allConfig());
  const resolved = resolveConfig(values, project.defaults);
  const errors = [...resolved.errors];
  if (options.requireProject && resolved.config && !resolved.config.project && !projectFromEnvironment()) {
    errors.push({
      key: "gcp:project",
      message:
        `is not set, nor any of ${PROJECT_ENVIRONMENT.join(", ")} (the GCP provider's fallbacks); ` +
        "run: pulumi config set gcp:project <your-project-id>",
    });
  }
  for (const warning of resolved.warnings) pulumi.log.warn(`${warning.key}: ${warning.message}`);
  if (errors.length > 0 || !resolved.config) {
    throw new pulumi.RunError(formatIssues(`Invalid configuration for stack "${pulumi.getStack()}":`, errors));
  }
  return resolved.config;
}

/**
 * The engine's --parallel as the program sees it: the Node.js language host passes the engine's
 * value to @pulumi/pulumi's run script (`--parallel`, pulumi-language-nodejs constructArguments),
 * which keeps it in PULUMI_NODEJS_PARALLEL (runtime/state.js). Undefined when not run by the engine.
 */
export function engineParallelism(): number | undefined {
  const value = Number(process.env.PULUMI_NODEJS_PARALLEL);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}
