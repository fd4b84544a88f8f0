// IPv4 CIDR arithmetic for validation and for deriving every node's static address from the
// subnet. Pure: no Pulumi, no I/O.

export interface Ipv4Cidr {
  /** Network address as an unsigned 32-bit integer. */
  readonly base: number;
  readonly prefix: number;
  /** Number of addresses in the range (2^(32 - prefix)). */
  readonly size: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

export type CidrParseResult = { cidr: Ipv4Cidr } | { error: string };

/** Parses "a.b.c.d/n" strictly: host bits must be zero, so a typo cannot silently widen a range. */
export function parseCidr(text: string): CidrParseResult {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(text);
  if (!match) return { error: "is not an IPv4 CIDR like 10.0.0.0/16" };
  const address = parseIpv4(match[1]);
  const prefix = Number(match[2]);
  if (address === undefined || prefix > 32) return { error: "is not an IPv4 CIDR like 10.0.0.0/16" };
  const size = 2 ** (32 - prefix);
  const base = Math.floor(address / size) * size;
  if (base !== address) {
    return { error: `has host bits set; did you mean ${formatIpv4(base)}/${prefix}?` };
  }
  return { cidr: { base, prefix, size } };
}

export function cidrToString(cidr: Ipv4Cidr): string {
  return `${formatIpv4(cidr.base)}/${cidr.prefix}`;
}

export function overlaps(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

export function contains(outer: Ipv4Cidr, inner: Ipv4Cidr): boolean {
  return inner.base >= outer.base && inner.base + inner.size <= outer.base + outer.size;
}

/** RFC 1918 plus the shared address space (RFC 6598) that GCP also accepts for subnets. */
export const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"];

export function isPrivate(cidr: Ipv4Cidr): boolean {
  return PRIVATE_RANGES.some((range) => {
    const parsed = parseCidr(range);
    return "cidr" in parsed && contains(parsed.cidr, cidr);
  });
}

/** The address at `offset` inside the range, e.g. hostAddress(10.10.0.0/22, 10) = 10.10.0.10. */
export function hostAddress(cidr: Ipv4Cidr, offset: number): string {
  if (!Number.isInteger(offset) || offset < 0 || offset >= cidr.size) {
    throw new RangeError(`offset ${offset} is outside ${cidrToString(cidr)}`);
  }
  return formatIpv4(cidr.base + offset);
}
