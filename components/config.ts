// Stack config → one validated ClusterConfig, before any resource is registered. The checks and
// messages live in render/config.ts, shared with the offline render; this file only adapts the
// Pulumi runtime's view of the config to it.

import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig, formatIssues, resolveConfig } from "../render/config";
import { normaliseStackValues, readProjectFile } from "../render/project";

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
  if (options.requireProject && resolved.config && !resolved.config.project) {
    errors.push({ key: "gcp:project", message: "is not set; run: pulumi config set gcp:project <your-project-id>" });
  }
  for (const warning of resolved.warnings) pulumi.log.warn(`${warning.key}: ${warning.message}`);
  if (errors.length > 0 || !resolved.config) {
    throw new pulumi.RunError(formatIssues(`Invalid configuration for stack "${pulumi.getStack()}":`, errors));
  }
  return resolved.config;
}
