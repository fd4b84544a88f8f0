// Rules about changes between two deployments of the same stack. Pure.

/**
 * Control planes leave one at a time (each removal waits for the previous one), but every removal
 * shrinks etcd's margin: going from n members to fewer than a majority of n in one update would
 * depend on every remaining member staying healthy through several membership changes. So one
 * update may remove at most (n - 1) / 2 control planes; bigger cuts take several updates.
 * Returns why a change is refused, or undefined when it is allowed.
 */
export function controlPlaneChangeProblem(previous: number | undefined, next: number): string | undefined {
  if (previous === undefined || next >= previous) return undefined;
  const majority = Math.floor(previous / 2) + 1;
  if (next >= majority) return undefined;
  return (
    `refusing to go from ${previous} to ${next} control planes in one update: etcd would drop below a majority ` +
    `of its ${previous} current members (${majority}) while members are being removed, and one unhealthy ` +
    `member would then stop the cluster. Scale down in steps of at most ${Math.floor((previous - 1) / 2)} ` +
    `(e.g. ${previous} -> ${Math.max(majority, next)}), running pulumi up after each.`
  );
}
