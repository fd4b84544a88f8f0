import { RawConfig, resolveConfig, CONFIG_KEYS } from "../../render/config";
import { listStacks, readProjectFile, readStackFile } from "../../render/project";
import { zonesOfRegion, machineShape } from "../../render/gce";
import { TEST_OPENPGP_KEY } from "./fixtures";

const project = readProjectFile();
const resolve = (values: RawConfig) => resolveConfig(values, project.defaults);

describe("valid configurations", () => {
  test.each(listStacks())("stack %s from the repository is valid", (stack) => {
    const result = resolve(readStackFile(stack));
    expect(result.errors).toEqual([]);
    expect(result.config).toBeDefined();
  });

  test("defaults alone are valid and take three zones of the region from the table", () => {
    const result = resolve({});
    expect(result.errors).toEqual([]);
    expect(result.config?.region).toBe("us-central1");
    expect(result.config?.zones).toEqual(["us-central1-a", "us-central1-b", "us-central1-c"]);
    expect(result.config?.controlPlaneCount).toBe(3);
    expect(result.config?.workerCount).toBe(2);
    expect(result.config?.kubernetesVersion).toBe("1.36");
    // etcd backups: a bucket of its own, kept 14 days, a snapshot every hour.
    expect(result.config).toMatchObject({ backupBucket: "", backupRetentionDays: 14, backupSchedule: "hourly" });
  });

  test("zones come from the table, not by appending letters (us-east1 has no -a)", () => {
    expect(resolve({ "gcp:region": "us-east1" }).config?.zones).toEqual(["us-east1-b", "us-east1-c", "us-east1-d"]);
    expect(zonesOfRegion("europe-west1")).toEqual(["europe-west1-b", "europe-west1-c", "europe-west1-d"]);
  });

  test("a 5 control-plane / 10 worker cluster is valid", () => {
    const result = resolve({ controlPlaneCount: 5, workerCount: 10 });
    expect(result.errors).toEqual([]);
    expect(result.config?.controlPlaneCount).toBe(5);
  });

  test("values as the Pulumi runtime hands them out (strings, JSON arrays) are converted", () => {
    const result = resolve({
      controlPlaneCount: "5",
      workerCount: "4",
      zones: '["us-central1-b","us-central1-c","us-central1-f"]',
      adminCidrs: '["203.0.113.0/24"]',
    });
    expect(result.errors).toEqual([]);
    expect(result.config?.controlPlaneCount).toBe(5);
    expect(result.config?.zones).toEqual(["us-central1-b", "us-central1-c", "us-central1-f"]);
    expect(result.warnings.filter((w) => w.key === "ha-k8s:adminCidrs")).toEqual([]);
  });

  test.each([
    ["n2-standard-2", true],
    ["e2-standard-4", true],
    ["custom-2-4096", true],
    ["n2-custom-4-8192", true],
    ["e2-highcpu-4", true],
    ["c3-standard-4", true],
  ])("machine type %s is accepted for nodes: %s", (type, ok) => {
    expect(resolve({ workerMachineType: type }).errors.length === 0).toBe(ok);
  });

  test.each([
    ["mirror.gcr.io", "mirror.gcr.io"],
    ["europe-docker.pkg.dev/my-project/docker-hub", "europe-docker.pkg.dev/my-project/docker-hub"],
    ["registry.example.com:5000", "registry.example.com:5000"],
    ["", undefined],
  ])("registryMirror %j is accepted", (value, expected) => {
    const result = resolve({ registryMirror: value });
    expect(result.errors).toEqual([]);
    expect(result.config?.registryMirror).toBe(expected);
  });

  test.each([
    [
      "kubernetesPackageMirror",
      "https://artifactory.example.com/pkgs-k8s/",
      "https://artifactory.example.com/pkgs-k8s",
    ],
    ["kubernetesPackageMirror", "http://192.0.2.20:8080", "http://192.0.2.20:8080"],
    ["crioPackageMirror", "https://mirror.example.com/opensuse//", "https://mirror.example.com/opensuse"],
    ["etcdReleaseMirror", "https://files.example.com/etcd/", "https://files.example.com/etcd"],
    [
      "calicoManifestMirror",
      "https://files.example.com/github/projectcalico/calico",
      "https://files.example.com/github/projectcalico/calico",
    ],
    ["imageRepository", "registry.example.com/k8s", "registry.example.com/k8s"],
    ["imageRepository", "192.0.2.10", "192.0.2.10"],
    ["imageRepository", "192.0.2.10:5000", "192.0.2.10:5000"],
    ["imageRepository", "192.0.2.10:5000/k8s", "192.0.2.10:5000/k8s"],
    // kubeadm's default named explicitly is the default (nothing rendered, nothing to refuse later).
    ["imageRepository", "registry.k8s.io", undefined],
  ])("%s %j is accepted as %j", (key, value, expected) => {
    const result = resolve({ [key]: value });
    expect(result.errors).toEqual([]);
    expect((result.config as unknown as Record<string, unknown>)[key]).toBe(expected);
  });

  test("repository keys: an armored block is accepted with CRLF, indentation, headers or no checksum, staged as GnuPG writes it", () => {
    // GnuPG's own armor (64 characters a line, the checksum line): what gpg 2.2 dearmors reliably.
    const withHeader = TEST_OPENPGP_KEY.replace("\n\n", "\nComment: pasted from a mirror's page\n\n");
    for (const key of ["kubernetesPackageKey", "crioPackageKey"]) {
      for (const variant of [
        TEST_OPENPGP_KEY,
        `\n  ${TEST_OPENPGP_KEY.replace(/\n/g, "\r\n  ")}  \n`,
        withHeader,
        TEST_OPENPGP_KEY.replace(/^=.{4}\n/m, ""),
      ]) {
        const result = resolve({ [key]: variant });
        expect(result.errors).toEqual([]);
        expect((result.config as unknown as Record<string, string>)[key]).toBe(TEST_OPENPGP_KEY);
      }
    }
  });

  test("the mirror keys left empty are today's behaviour: nothing set", () => {
    const result = resolve({
      kubernetesPackageMirror: "",
      kubernetesPackageKey: "",
      crioPackageMirror: "",
      crioPackageKey: "",
      imageRepository: "",
      calicoManifestMirror: "",
      etcdReleaseMirror: "",
    });
    expect(result.errors).toEqual([]);
    expect(result.config).toEqual(resolve({}).config);
    for (const key of [
      "kubernetesPackageMirror",
      "kubernetesPackageKey",
      "crioPackageMirror",
      "crioPackageKey",
      "imageRepository",
      "calicoManifestMirror",
      "etcdReleaseMirror",
    ]) {
      expect((resolve({}).config as unknown as Record<string, unknown>)[key]).toBeUndefined();
    }
  });

  test("machine shapes are computed from the family tables", () => {
    expect(machineShape("e2-medium")).toEqual({ vcpus: 2, memoryMb: 4096 });
    expect(machineShape("n1-standard-2")).toEqual({ vcpus: 2, memoryMb: 7680 });
    expect(machineShape("custom-4-15360-ext")).toEqual({ vcpus: 4, memoryMb: 15360 });
    expect(machineShape("z9-standard-2")).toBeUndefined();
  });
});

/** TEST_OPENPGP_KEY with its key data changed: the first packet byte, or one character of the data. */
const keyWith = (change: (data: Buffer) => void): string => {
  const lines = TEST_OPENPGP_KEY.trim().split("\n");
  const body = lines.slice(2, -2).join("");
  const data = Buffer.from(body, "base64");
  change(data);
  const base64 = data.toString("base64").match(/.{1,64}/g)!;
  return [lines[0], "", ...base64, lines.at(-2)!, lines.at(-1)!].join("\n");
};

// Each invalid case: the values, the key the message must name, and a fragment of the message.
const invalid: [string, RawConfig, string, RegExp][] = [
  // Mirrors and repository keys (render/mirrors.ts)
  [
    "package mirror without a scheme",
    { kubernetesPackageMirror: "pkgs.example.com/k8s" },
    "ha-k8s:kubernetesPackageMirror",
    /"pkgs.example.com\/k8s" does not start with http:\/\/ or https:\/\/; allowed: http:\/\/ or https:\/\/.*\(or leave it empty for https:\/\/pkgs.k8s.io\)/,
  ],
  [
    "package mirror over ftp",
    { kubernetesPackageMirror: "ftp://m.example.com" },
    "ha-k8s:kubernetesPackageMirror",
    /"ftp:\/\/m.example.com" has the scheme ftp:\/\//,
  ],
  [
    "package mirror with a query",
    { kubernetesPackageMirror: "https://m.example.com/k8s?token=1" },
    "ha-k8s:kubernetesPackageMirror",
    /has a query/,
  ],
  [
    "package mirror with a fragment",
    { crioPackageMirror: "https://m.example.com/#top" },
    "ha-k8s:crioPackageMirror",
    /"https:\/\/m.example.com\/#top" has a fragment/,
  ],
  [
    "package mirror with credentials",
    { crioPackageMirror: "https://user:secret@m.example.com/opensuse" },
    "ha-k8s:crioPackageMirror",
    /carries credentials.*plain text.*or leave it empty for https:\/\/download.opensuse.org\/repositories/,
  ],
  [
    "package mirror with whitespace",
    { crioPackageMirror: "https://m.example.com/open suse" },
    "ha-k8s:crioPackageMirror",
    /"https:\/\/m.example.com\/open suse" contains whitespace/,
  ],
  [
    "package mirror without a host",
    { kubernetesPackageMirror: "https:///k8s" },
    "ha-k8s:kubernetesPackageMirror",
    /has no host/,
  ],
  [
    "package mirror with a quote",
    { kubernetesPackageMirror: 'https://m.example.com/"k8s"' },
    "ha-k8s:kubernetesPackageMirror",
    /contains "\\"", which a URL cannot hold/,
  ],
  [
    "calico mirror as a bare path",
    { calicoManifestMirror: "raw.example.com/projectcalico/calico" },
    "ha-k8s:calicoManifestMirror",
    /"raw.example.com\/projectcalico\/calico" does not start with http:\/\/ or https:\/\/.*or leave it empty for https:\/\/raw.githubusercontent.com\/projectcalico\/calico/,
  ],
  [
    "calico mirror with a query",
    { calicoManifestMirror: "https://files.example.com/calico?ref=main" },
    "ha-k8s:calicoManifestMirror",
    /"https:\/\/files.example.com\/calico\?ref=main" has a query \(\?\.\.\.\); allowed: http:\/\/ or https:\/\/ followed by host\[:port\]\[\/path\], without query, fragment, credentials or whitespace/,
  ],
  [
    "etcd release mirror without a scheme",
    { etcdReleaseMirror: "github.example.com/etcd-io/etcd/releases/download" },
    "ha-k8s:etcdReleaseMirror",
    /"github.example.com\/etcd-io\/etcd\/releases\/download" does not start with http:\/\/ or https:\/\/.*or leave it empty for https:\/\/github.com\/etcd-io\/etcd\/releases\/download/,
  ],
  [
    "a package key that is no key",
    { kubernetesPackageKey: "not a key" },
    "ha-k8s:kubernetesPackageKey",
    /"not a key" is not a repository key: it does not start with "-----BEGIN PGP PUBLIC KEY BLOCK-----"; allowed: one ASCII-armored/,
  ],
  [
    "a private key block",
    { kubernetesPackageKey: "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQ==\n-----END PGP PRIVATE KEY BLOCK-----" },
    "ha-k8s:kubernetesPackageKey",
    /"-----BEGIN PGP PRIVATE KEY BLOCK-----…" is not a repository key: it is a private key block; give the public key/,
  ],
  [
    "a key cut short",
    { crioPackageKey: TEST_OPENPGP_KEY.split("\n").slice(0, 4).join("\n") },
    "ha-k8s:crioPackageKey",
    /has no "-----END PGP PUBLIC KEY BLOCK-----" line; allowed: one ASCII-armored OpenPGP public key block, from "-----BEGIN PGP PUBLIC KEY BLOCK-----" to "-----END PGP PUBLIC KEY BLOCK-----" \(or leave it empty to download the CRI-O repository's own Release.key\)/,
  ],
  [
    "two key blocks",
    { crioPackageKey: TEST_OPENPGP_KEY + TEST_OPENPGP_KEY },
    "ha-k8s:crioPackageKey",
    /has more after its "-----END PGP PUBLIC KEY BLOCK-----" line \(one block only\)/,
  ],
  [
    "a key damaged when copied",
    { crioPackageKey: keyWith((data) => (data[20] ^= 1)) },
    "ha-k8s:crioPackageKey",
    /fails its armor checksum/,
  ],
  [
    "a secret key in a public block",
    { crioPackageKey: keyWith((data) => (data[0] = 0x94)) },
    "ha-k8s:crioPackageKey",
    /holds a secret key/,
  ],
  [
    "a key whose data is no OpenPGP packet",
    { kubernetesPackageKey: keyWith((data) => (data[0] = 0x41)) },
    "ha-k8s:kubernetesPackageKey",
    /does not hold an OpenPGP public key/,
  ],
  [
    "a key with a line that is not base64",
    { kubernetesPackageKey: TEST_OPENPGP_KEY.replace(/\n\n(.)/, "\n\n*$1") },
    "ha-k8s:kubernetesPackageKey",
    /holds a line that is not base64; allowed: one ASCII-armored OpenPGP public key block.*\(or leave it empty to download the Kubernetes repository's own Release.key\)/,
  ],
  [
    "image repository with a scheme",
    { imageRepository: "https://registry.example.com/k8s" },
    "ha-k8s:imageRepository",
    /"https:\/\/registry.example.com\/k8s" is not an image repository; use host\[:port\]\[\/path\] without a scheme.*or leave it empty for registry.k8s.io/,
  ],
  [
    "image repository in upper case",
    { imageRepository: "Registry.Example.com" },
    "ha-k8s:imageRepository",
    /in lower case/,
  ],
  [
    "image repository without a dot",
    { imageRepository: "registry" },
    "ha-k8s:imageRepository",
    /e\.g\. registry\.example\.com\/k8s or 192\.0\.2\.10:5000/,
  ],
  [
    "image repository with a trailing slash",
    { imageRepository: "192.0.2.10:5000/" },
    "ha-k8s:imageRepository",
    /"192.0.2.10:5000\/" is not an image repository/,
  ],
  ["mirror with a scheme", { registryMirror: "https://mirror.gcr.io" }, "ha-k8s:registryMirror", /without a scheme/],
  ["mirror in upper case", { registryMirror: "Mirror.GCR.io" }, "ha-k8s:registryMirror", /lower case/],
  ["mirror with a trailing slash", { registryMirror: "mirror.gcr.io/" }, "ha-k8s:registryMirror", /host\[:port\]/],
  ["mirror without a dot", { registryMirror: "mirror" }, "ha-k8s:registryMirror", /e\.g\. mirror\.gcr\.io/],
  ["even control-plane count", { controlPlaneCount: 4 }, "ha-k8s:controlPlaneCount", /odd/],
  ["zero control planes", { controlPlaneCount: 0 }, "ha-k8s:controlPlaneCount", /odd count/],
  ["negative control planes", { controlPlaneCount: -3 }, "ha-k8s:controlPlaneCount", /not allowed/],
  ["too many control planes", { controlPlaneCount: 9 }, "ha-k8s:controlPlaneCount", /1, 3, 5 or 7/],
  ["negative workers", { workerCount: -1 }, "ha-k8s:workerCount", /0 to/],
  ["non-integer workers", { workerCount: "two" }, "ha-k8s:workerCount", /not a whole number/],
  ["fractional workers", { workerCount: 2.5 }, "ha-k8s:workerCount", /not a whole number/],
  ["small worker type", { workerMachineType: "e2-small" }, "ha-k8s:workerMachineType", /2 vCPU and 4 GB/],
  [
    "1 vCPU control plane",
    { controlPlaneMachineType: "n1-standard-1" },
    "ha-k8s:controlPlaneMachineType",
    /at least 2 vCPU/,
  ],
  ["highcpu too little memory", { workerMachineType: "e2-highcpu-2" }, "ha-k8s:workerMachineType", /4 GB/],
  ["custom too little memory", { workerMachineType: "custom-2-2048" }, "ha-k8s:workerMachineType", /4 GB/],
  [
    "unknown machine type",
    { workerMachineType: "m9-huge-3" },
    "ha-k8s:workerMachineType",
    /not a machine type we know/,
  ],
  [
    "unknown lb machine type",
    { loadBalancerMachineType: "tiny" },
    "ha-k8s:loadBalancerMachineType",
    /not a machine type/,
  ],
  ["malformed subnet", { subnetCidr: "10.10.0.0" }, "ha-k8s:subnetCidr", /not an IPv4 CIDR/],
  [
    "subnet host bits",
    { subnetCidr: "10.10.0.1/22" },
    "ha-k8s:subnetCidr",
    /host bits set; did you mean 10.10.0.0\/22/,
  ],
  ["public subnet", { subnetCidr: "8.8.0.0/16" }, "ha-k8s:subnetCidr", /not a private range/],
  ["bad octet", { podCidr: "10.300.0.0/16" }, "ha-k8s:podCidr", /not an IPv4 CIDR/],
  ["pod overlaps subnet", { podCidr: "10.10.0.0/16" }, "ha-k8s:podCidr", /overlaps ha-k8s:subnetCidr/],
  ["service overlaps pods", { serviceCidr: "10.244.0.0/16" }, "ha-k8s:serviceCidr", /overlaps ha-k8s:podCidr/],
  ["service overlaps subnet", { serviceCidr: "10.0.0.0/12" }, "ha-k8s:serviceCidr", /overlaps ha-k8s:subnetCidr/],
  ["service range too large", { serviceCidr: "10.128.0.0/10" }, "ha-k8s:serviceCidr", /\/12 to \/24/],
  [
    "pod cidr too small for nodes",
    { podCidr: "10.244.0.0/22", workerCount: 6 },
    "ha-k8s:podCidr",
    /holds 4 node ranges.*9 nodes/,
  ],
  ["pod cidr smaller than a node range", { podCidr: "10.244.0.0/26" }, "ha-k8s:podCidr", /smaller than one node/],
  ["subnet too small for nodes", { subnetCidr: "10.10.0.0/27", workerCount: 20 }, "ha-k8s:subnetCidr", /workers need/],
  ["subnet prefix out of GCP range", { subnetCidr: "10.10.0.0/30" }, "ha-k8s:subnetCidr", /\/8 to \/29/],
  [
    "unsupported kubernetes minor",
    { kubernetesVersion: "1.30" },
    "ha-k8s:kubernetesVersion",
    /allowed: 1.35, 1.36, 1.37/,
  ],
  ["kubernetes version as YAML number", { kubernetesVersion: 1.36 }, "ha-k8s:kubernetesVersion", /quote/],
  [
    "kubernetes patch instead of minor",
    { kubernetesVersion: "1.36.2" },
    "ha-k8s:kubernetesVersion",
    /not a supported minor/,
  ],
  ["zone outside region", { zones: ["europe-west1-b"] }, "ha-k8s:zones", /not a zone of us-central1/],
  [
    "nonexistent zone letter",
    { "gcp:region": "us-east1", zones: ["us-east1-a"] },
    "ha-k8s:zones",
    /allowed: us-east1-b, us-east1-c, us-east1-d/,
  ],
  ["duplicate zones", { zones: ["us-central1-a", "us-central1-a"] }, "ha-k8s:zones", /more than once/],
  ["zones not a list", { zones: "us-central1-a" }, "ha-k8s:zones", /not a list/],
  ["unknown region without zones", { "gcp:region": "mars-north1" }, "gcp:region", /not in the region table/],
  ["malformed region", { "gcp:region": "Europe West" }, "gcp:region", /not a GCP region name/],
  ["malformed admin cidr", { adminCidrs: ["1.2.3.4/33"] }, "ha-k8s:adminCidrs", /not an IPv4 CIDR/],
  ["admin cidr host bits", { adminCidrs: ["203.0.113.7/24"] }, "ha-k8s:adminCidrs", /host bits/],
  ["empty admin cidrs", { adminCidrs: [] }, "ha-k8s:adminCidrs", /is empty/],
  ["upper-case cluster name", { clusterName: "Prod" }, "ha-k8s:clusterName", /lower-case/],
  ["cluster name ending in hyphen", { clusterName: "prod-" }, "ha-k8s:clusterName", /not ending with a hyphen/],
  ["cluster name too long", { clusterName: "a".repeat(50) }, "ha-k8s:clusterName", /1-41/],
  ["cluster name starting with digit", { clusterName: "1prod" }, "ha-k8s:clusterName", /starting with a letter/],
  ["unsupported cni", { cni: "flannel" }, "ha-k8s:cni", /allowed: calico/],
  ["non-ubuntu image", { image: "centos-cloud/centos-stream-9" }, "ha-k8s:image", /Ubuntu LTS/],
  ["disk too small", { diskSizeGb: 10 }, "ha-k8s:diskSizeGb", /20 to 65536/],
  ["bad project id", { "gcp:project": "My_Project" }, "gcp:project", /not a GCP project ID/],
  ["misspelled key", { workerCnt: 3 }, "ha-k8s:workerCnt", /did you mean ha-k8s:workerCount/],
  // etcd backups
  [
    "bucket name with upper case",
    { backupBucket: "My-Backups" },
    "ha-k8s:backupBucket",
    /"My-Backups" is not a Cloud Storage bucket name: it may use only lower-case/,
  ],
  ["bucket name too short", { backupBucket: "ab" }, "ha-k8s:backupBucket", /3 to 63 characters/],
  ["bucket name with google", { backupBucket: "google-etcd" }, "ha-k8s:backupBucket", /"goog"/],
  [
    "created bucket refused by its name",
    { clusterName: "goog-prod" },
    "ha-k8s:backupBucket",
    /is empty, so the program would create "goog-prod-etcd-backups-…".*name an existing bucket or change ha-k8s:clusterName/,
  ],
  [
    "retention of zero days",
    { backupRetentionDays: 0 },
    "ha-k8s:backupRetentionDays",
    /0 is not allowed; use 1 to 3650/,
  ],
  ["retention of 11 years", { backupRetentionDays: 4015 }, "ha-k8s:backupRetentionDays", /use 1 to 3650/],
  ["retention as words", { backupRetentionDays: "two weeks" }, "ha-k8s:backupRetentionDays", /not a whole number/],
  [
    "schedule systemd does not know",
    { backupSchedule: "every hour" },
    "ha-k8s:backupSchedule",
    /"every hour" .*allowed: a systemd calendar event/,
  ],
  ["schedule every minute", { backupSchedule: "minutely" }, "ha-k8s:backupSchedule", /at most one every 5 minutes/],
  [
    "schedule with a bad hour",
    { backupSchedule: "*-*-* 24:00" },
    "ha-k8s:backupSchedule",
    /hour "24" is outside 0..23/,
  ],
];

describe("invalid configurations are rejected with the key, the value and what is allowed", () => {
  test.each(invalid)("%s", (_name, values, key, message) => {
    const result = resolve(values);
    expect(result.config).toBeUndefined();
    const forKey = result.errors.filter((e) => e.key === key);
    expect(forKey.length).toBeGreaterThan(0);
    expect(forKey.map((e) => e.message).join("\n")).toMatch(message);
  });

  test("every problem is reported at once, not one per run", () => {
    const result = resolve({
      controlPlaneCount: 2,
      workerCount: -1,
      workerMachineType: "e2-micro",
      podCidr: "10.10.0.0/16",
      kubernetesVersion: "1.29",
      adminCidrs: ["nope"],
    });
    expect(new Set(result.errors.map((e) => e.key))).toEqual(
      new Set([
        "ha-k8s:controlPlaneCount",
        "ha-k8s:workerCount",
        "ha-k8s:workerMachineType",
        "ha-k8s:podCidr",
        "ha-k8s:kubernetesVersion",
        "ha-k8s:adminCidrs",
      ]),
    );
  });

  test("every invalid mirror key is reported at once, each naming its key and value", () => {
    const result = resolve({
      kubernetesPackageMirror: "pkgs.example.com",
      kubernetesPackageKey: "-----BEGIN PGP PUBLIC KEY BLOCK-----",
      crioPackageMirror: "https://m.example.com/?x",
      crioPackageKey: "key",
      imageRepository: "https://registry.example.com",
      calicoManifestMirror: "file:///srv/calico",
      registryMirror: "https://mirror.gcr.io",
    });
    expect(result.errors.map((e) => e.key).sort()).toEqual(
      [
        "ha-k8s:calicoManifestMirror",
        "ha-k8s:crioPackageKey",
        "ha-k8s:crioPackageMirror",
        "ha-k8s:imageRepository",
        "ha-k8s:kubernetesPackageKey",
        "ha-k8s:kubernetesPackageMirror",
        "ha-k8s:registryMirror",
      ].sort(),
    );
    const message = (key: string) => result.errors.find((e) => e.key === `ha-k8s:${key}`)!.message;
    expect(message("kubernetesPackageMirror")).toContain('"pkgs.example.com"');
    expect(message("kubernetesPackageKey")).toContain('"-----BEGIN PGP PUBLIC KEY BLOCK-----"');
    expect(message("crioPackageMirror")).toContain('"https://m.example.com/?x"');
    expect(message("crioPackageKey")).toContain('"key"');
    expect(message("imageRepository")).toContain('"https://registry.example.com"');
    expect(message("calicoManifestMirror")).toContain('"file:///srv/calico" has the scheme file://');
  });

  test("the message quotes the bad value", () => {
    const [error] = resolve({ workerMachineType: "e2-micro" }).errors;
    expect(error.message).toContain('"e2-micro"');
  });
});

describe("warnings", () => {
  test.each<[string, RawConfig, string]>([
    ["single control plane", { controlPlaneCount: 1 }, "ha-k8s:controlPlaneCount"],
    ["adminCidrs open to the world (the default)", {}, "ha-k8s:adminCidrs"],
    ["control planes in fewer than three zones", { zones: ["us-central1-a", "us-central1-b"] }, "ha-k8s:zones"],
    ["fewer than two workers", { workerCount: 1 }, "ha-k8s:workerCount"],
    [
      "a retention with an existing bucket (the program sets no lifecycle on it)",
      { backupBucket: "team-backups", backupRetentionDays: 30 },
      "ha-k8s:backupRetentionDays",
    ],
  ])("%s warns but is valid", (_name, values, key) => {
    const result = resolve(values);
    expect(result.errors).toEqual([]);
    expect(result.warnings.map((w) => w.key)).toContain(key);
  });
});

test("the keys the code validates are exactly the keys Pulumi.yaml declares", () => {
  expect(Object.keys(CONFIG_KEYS).sort()).toEqual(Object.keys(project.schema).sort());
  for (const [key, kind] of Object.entries(CONFIG_KEYS)) {
    expect(project.schema[key].type).toBe(kind);
    expect(project.schema[key].description).toBeTruthy();
  }
});
