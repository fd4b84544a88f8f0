// What Pulumi is told about each bootstrap step's command, decided in one place: components/
// bootstrap.ts declares exactly this as a @pulumi/command resource, and the real-cluster tier's
// engine (tests/cluster/lab/engine.ts) runs exactly this on the lab's machines. The bundle itself
// (stdin) comes from renderStepCommand. Pure.

import { Plan, Step, runsOnDeployer } from "./plan";
import {
  RUN_BUNDLE_COMMAND,
  RUN_LOCAL_BUNDLE_COMMAND,
  deletedWithMachine,
  renderStepDeleteCommand,
  stepResourceName,
  stepTimeouts,
  stepTraits,
} from "./steps";

/**
 * The provider's own dial retries, for a connection refused or reset once a machine is known to
 * accept logins (its login step ran first). They start 100 ms apart and back off to at most 5 s
 * (retry.Until in pulumi/sdk, used by connection.go's dialWithRetry), so 20 quick failures span about
 * a minute; perDialTimeout bounds an attempt that hangs. The real-cluster tier's engine dials the same.
 */
export const DIAL = { dialErrorLimit: 20, perDialTimeout: 30 } as const;

export interface StepResource {
  /** The resource's name ("<node>-<kind>"), and the names it had before (aliases). */
  readonly name: string;
  readonly formerNames: readonly string[];
  /** Runs where `pulumi up` runs (a local command), not on a machine over SSH. */
  readonly local: boolean;
  /** The create (and update) command, the bundle on its stdin; none for delete-only steps. */
  readonly create?: string;
  /**
   * What runs when Pulumi deletes the step, on its machine; none when there is nothing to undo. It
   * names the instance id of the machine it undoes (instanceIdOf) and acts only on that machine.
   */
  readonly delete?: string;
  /** The machine whose VM the step is deleted with (`deletedWith`, render/steps.ts deletedWithMachine). */
  readonly deletedWith?: string;
  /** The machines whose replacement (a new instance id) replaces this step. */
  readonly rerunWhenReplaced: readonly string[];
  /** The old step's delete runs before the new one is created (the old machine's undo first). */
  readonly deleteBeforeReplace: boolean;
  /** The bundle and the outputs are secret (stdout, stderr): only stderr is logged. */
  readonly secret: boolean;
  /** The bundle names the backup bucket, which Pulumi names at deploy time. */
  readonly usesBucket: boolean;
  readonly timeouts: { readonly create: string; readonly update: string; readonly delete: string };
}

export function stepResource(
  plan: Plan,
  step: Step,
  sources: Readonly<Record<string, string>>,
  /** The machines' GCE instance ids (the VM's `instanceId`); placeholders without (offline render). */
  instanceIdOf?: (nodeName: string) => string,
): StepResource {
  const traits = stepTraits(step);
  const local = runsOnDeployer(step);
  const deleteCommand = local ? undefined : renderStepDeleteCommand(plan, step, sources, instanceIdOf);
  return {
    name: stepResourceName(step.id),
    formerNames: (step.formerIds ?? []).map(stepResourceName),
    local,
    create: local ? RUN_LOCAL_BUNDLE_COMMAND : traits.deleteOnly ? undefined : RUN_BUNDLE_COMMAND,
    delete: deleteCommand,
    deletedWith: deletedWithMachine(step),
    rerunWhenReplaced: step.rerunWhenReplaced,
    deleteBeforeReplace: deleteCommand !== undefined,
    // No step ignores a change of its bundle, init included: the engine puts an ignored input back to
    // its stored value whenever the resource has an old state, a replacement included
    // (processIgnoreChanges under `if hasOld` in pkg/resource/deploy/step_generator.go), so a cp-1
    // rebuilt after a loss would run the bundle stored when the stack was created. A changed bundle
    // runs kubeadm-init.sh again instead, which finds the cluster initialised and does nothing.
    secret: traits.secret,
    usesBucket: step.kind === "backup" || step.kind === "snapshot",
    timeouts: stepTimeouts(plan, step),
  };
}
