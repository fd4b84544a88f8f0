// The kubeconfig handed to operators: kubeadm's admin.conf (never super-admin.conf, which bypasses
// RBAC since 1.29) with its server pointed at the load balancer's external address, which the API
// server certificate lists in its SANs. Pure.

export function publicKubeconfig(adminConf: string, externalIp: string, port: number): string {
  const lines = adminConf.split("\n");
  let replaced = 0;
  const out = lines.map((line) => {
    const match = /^(\s*server:\s*)https:\/\/\S+$/.exec(line);
    if (!match) return line;
    replaced++;
    return `${match[1]}https://${externalIp}:${port}`;
  });
  if (replaced !== 1) throw new Error(`admin.conf should name exactly one server, found ${replaced}`);
  return out.join("\n");
}
