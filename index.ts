// ha-k8s: config → components → exports. Everything else lives in components/ (the GCP and SSH
// wiring) and render/ (pure renderers shared with `npm run render` and the tests).

import { loadClusterConfig } from "./components/config";
import { buildPlan } from "./render/plan";

const config = loadClusterConfig();
const plan = buildPlan(config);

export const clusterName = config.clusterName;
export const controlPlaneEndpoint = `${plan.endpoint.internalIp}:${plan.endpoint.port}`;
export const nodes = plan.nodes.map((n) => ({ name: n.name, role: n.role, zone: n.zone, internalIp: n.internalIp }));
