/**
 * The `dhcp:` section: a DHCPINFORM responder (`inform:`) and a DHCP relay agent (`relay:`), both on
 * any interface type (ppp, ipsec/TUN, point-to-point veth, Ethernet). Validated once at load; the
 * stage compiles it into numbers and pre-encoded option bytes.
 */
import { z } from 'zod';

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const ipv4 = z.string().regex(IPV4, 'an IPv4 address like 192.0.2.1');
const prefix = z.string().refine((s) => {
  const [a, l, ...rest] = s.split('/');
  if (rest.length > 0 || !IPV4.test(a ?? '')) return false;
  return l === undefined || (/^\d{1,2}$/.test(l) && Number(l) <= 32);
}, 'an IPv4 prefix like 10.0.0.0/8 (or an address)');
const netmask = ipv4.refine((s) => {
  const n = s.split('.').reduce((a, x) => a * 256 + Number(x), 0);
  const inv = (~n) >>> 0;
  return ((inv + 1) & inv) === 0;
}, 'a contiguous netmask like 255.255.255.0');
/** Interface name or shell glob (`ppp*`, `ipsec?`, `eth0`). */
const ifglob = z.string().min(1).max(15).regex(/^[A-Za-z0-9_.:@*?+-]+$/, 'an interface name or glob like ppp*');
const hex = z.string().regex(/^(0x)?([0-9a-fA-F]{2}[:\s]?)*$/, 'hex bytes like 0a0b0c or 0a:0b:0c');

export const classlessRouteSchema = z.object({
  destination: prefix.describe('prefix, e.g. 10.0.0.0/8 (0.0.0.0/0 is a default route)'),
  router: ipv4,
}).strict();

/** One extra option by code: exactly one of the typed value keys (or `hex` for anything). */
export const rawOptionSchema = z.object({
  code: z.number().int().min(1).max(254),
  ipv4: z.union([ipv4, z.array(ipv4).min(1)]).optional(),
  text: z.string().min(1).optional(),
  u8: z.number().int().min(0).max(255).optional(),
  u16: z.number().int().min(0).max(65535).optional(),
  u32: z.number().int().min(0).max(0xffffffff).optional(),
  i32: z.number().int().min(-0x80000000).max(0x7fffffff).optional(),
  bool: z.boolean().optional(),
  hex: hex.optional(),
}).strict().superRefine((o, ctx) => {
  const n = ['ipv4', 'text', 'u8', 'u16', 'u32', 'i32', 'bool', 'hex'].filter((k) => (o as Record<string, unknown>)[k] !== undefined).length;
  if (n !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one value: ipv4, text, u8, u16, u32, i32, bool or hex' });
  // RFC 2131 4.3.5: "The server MUST NOT ... fill in 'yiaddr' or include lease time parameters";
  // 53/54/55/52/82 are sluice's to write, 0/255 are not options.
  if ([50, 51, 52, 53, 54, 55, 58, 59, 61, 82].includes(o.code)) {
    ctx.addIssue({ code: 'custom', path: ['code'], message: `option ${o.code} is not configurable in an INFORM reply` });
  }
});

export const scopeSchema = z.object({
  name: z.string().min(1).max(64).optional(),
  /** Which requests this scope answers. Every key given must match; a scope with none matches all. */
  match: z.object({
    interfaces: z.array(ifglob).min(1).optional().describe('arrival interface globs'),
    giaddr: z.array(prefix).min(1).optional().describe('relayed INFORMs: giaddr inside one of these'),
    ciaddr: z.array(prefix).min(1).optional().describe("the client's address (ciaddr, else the IP source) inside one of these"),
  }).strict().prefault({}),
  /** Option 54 and the reply's source address; default: the arrival interface's address. */
  server_id: ipv4.optional(),
  subnet_mask: netmask.optional(),
  routers: z.array(ipv4).default([]),
  dns_servers: z.array(ipv4).default([]),
  domain_name: z.string().min(1).max(255).optional(),
  classless_routes: z.array(classlessRouteSchema).default([]),
  /** Send the routes as option 249 too (Microsoft's pre-RFC 3442 code, same encoding) when asked. */
  ms_classless_routes: z.boolean().default(true),
  /**
   * RFC 3442: "If the DHCP server returns both a Classless Static Routes option and a Router option,
   * the DHCP client MUST ignore the Router option." So when 121 goes out because the client asked for
   * it, option 3 is left out unless this is true.
   */
  routers_with_classless: z.boolean().default(false),
  /** Append 0.0.0.0/0 via routers[0] to 121/249, for clients that then ignore option 3. */
  classless_default_route: z.boolean().default(false),
  options: z.array(rawOptionSchema).default([]),
}).strict().superRefine((s, ctx) => {
  if (s.classless_default_route && s.routers.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['classless_default_route'], message: 'needs routers: the default route goes via routers[0]' });
  }
  const seen = new Set<number>();
  s.options.forEach((o, i) => {
    if (seen.has(o.code)) ctx.addIssue({ code: 'custom', path: ['options', i, 'code'], message: `option ${o.code} appears twice` });
    seen.add(o.code);
    const named: Record<number, string> = { 1: 'subnet_mask', 3: 'routers', 6: 'dns_servers', 15: 'domain_name', 121: 'classless_routes', 249: 'classless_routes' };
    if (named[o.code]) ctx.addIssue({ code: 'custom', path: ['options', i, 'code'], message: `option ${o.code} is configured with \`${named[o.code]}\`` });
  });
});

export const informSchema = z.object({
  enabled: z.boolean().default(true),
  /** NFQUEUE number the rules send client→server DHCP to (the engine's `queues:` must list it). */
  queue: z.number().int().min(0).max(65535).default(0),
  /** Interfaces INFORMs are taken from (globs). Requests on other interfaces are left alone. */
  interfaces: z.array(ifglob).min(1),
  /** Also take relayed INFORMs (giaddr set) arriving from these interfaces (e.g. the LAN a relay sits on). */
  relay_interfaces: z.array(ifglob).default([]),
  scopes: z.array(scopeSchema).min(1),
  rate_limit: z.object({
    /** Answers per second per client (chaddr + address + interface), with a burst. */
    per_client: z.number().positive().default(5),
    burst: z.number().int().min(1).default(10),
    /** Answers per second over all clients (a flood of spoofed clients). */
    total: z.number().positive().default(2000),
    /** Clients tracked at once; beyond it new clients are refused (counted) until idle ones expire. */
    max_clients: z.number().int().min(16).max(1 << 20).default(65536),
  }).strict().prefault({}),
}).strict();

export const relayInterfaceSchema = z.object({
  name: ifglob,
  /** giaddr written into requests from this interface; default: the interface's own address. */
  giaddr: ipv4.optional(),
  /** RFC 3046 circuit-id (sub-option 1): text; default: the interface name. */
  circuit_id: z.string().min(1).max(255).optional(),
  /** RFC 3527 link-selection (sub-option 5): the client's subnet when giaddr is not on it. */
  link_selection: ipv4.optional(),
  /** RFC 5107 server-id-override (sub-option 11): true = the giaddr; or an address. */
  server_id_override: z.union([z.boolean(), ipv4]).default(false),
  /** RFC 3046 2.1: a trusted circuit may deliver requests that already carry option 82 with giaddr 0. */
  trusted: z.boolean().default(false),
}).strict();

export const relayServerSchema = z.union([
  ipv4.transform((address) => ({ address, interface: undefined as string | undefined })),
  z.object({
    address: ipv4,
    /** Interface the server is reached through; default: the kernel's route (read from /proc/net/route). */
    interface: z.string().min(1).max(15).optional(),
  }).strict(),
]);

export const relaySchema = z.object({
  enabled: z.boolean().default(true),
  queue: z.number().int().min(0).max(65535).default(0),
  /** Client-side interfaces (any type, including point-to-point and tunnels). */
  interfaces: z.array(relayInterfaceSchema).min(1),
  servers: z.array(relayServerSchema).min(1),
  /** RFC 1542 4.1.1: requests with hops above this are discarded (the RFC caps it at 16). */
  max_hops: z.number().int().min(1).max(16).default(10),
  agent_info: z.object({
    /** Add option 82 to forwarded requests (and strip it from replies). */
    enabled: z.boolean().default(true),
    /** RFC 3046 remote-id (sub-option 2): text or hex. */
    remote_id: z.string().min(1).max(255).optional(),
    remote_id_hex: hex.optional(),
    /** Requests that already carry 82 (from a trusted circuit or a relay before us), as dhcrelay -m. */
    policy: z.enum(['append', 'replace', 'forward', 'discard']).default('forward'),
  }).strict().prefault({}),
}).strict();

export const dhcpConfigSchema = z.object({
  inform: informSchema.optional(),
  relay: relaySchema.optional(),
}).strict().superRefine((c, ctx) => {
  if (!c.inform && !c.relay) ctx.addIssue({ code: 'custom', message: 'give `inform:`, `relay:` or both' });
});

export type DhcpConfig = z.infer<typeof dhcpConfigSchema>;
export type DhcpConfigInput = z.input<typeof dhcpConfigSchema>;
export type InformConfig = z.infer<typeof informSchema>;
export type ScopeConfig = z.infer<typeof scopeSchema>;
export type RelayConfig = z.infer<typeof relaySchema>;
export type RawOptionConfig = z.infer<typeof rawOptionSchema>;
