/**
 * strongSwan in a lab namespace: one charon per namespace with its own /run (bind mount, because
 * charon hard-codes /var/run/charon.pid), its own strongswan.conf, VICI socket and log, and
 * `swanctl` commands against that socket.
 *
 * The lab kernel has no ESP, so charon uses kernel-libipsec (ESP in userspace over a TUN device,
 * ipsec0). strongSwan 5.9.8's libipsec only does ESP inside UDP 4500 (it fakes NAT detection to force
 * it): IKE_SA_INIT runs on UDP 500, IKE_AUTH and ESP-in-UDP on 4500. kernel-libipsec must be loaded
 * before kernel-netlink, or charon tries kernel xfrm ("unable to install inbound and outbound IPsec
 * SA (SAD) in kernel"). openssl is not installed here: gmp provides the MODP Diffie-Hellman groups.
 *
 *   const sv = await Charon.start(lab, svNs, 'sv');
 *   await sv.load(ikev2PskServer({ local: '203.0.113.10', pool: '10.99.0.0/24', localTs: '10.2.0.0/24' }));
 *   const c = await Charon.start(lab, c1, 'c1');
 *   await c.load(ikev2PskClient({ id: 'c1@lab', local: '192.168.1.11', remote: '203.0.113.10', remoteTs: '10.2.0.0/24' }));
 *   await c.initiate('c');  // child name 'c'; the server's child is 's'
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab, Namespace, Proc } from './lab';
import { sleep } from './lab';

export const CHARON = existsSync('/usr/lib/ipsec/charon') ? '/usr/lib/ipsec/charon' : '/usr/sbin/charon-systemd';

/** Why strongSwan cannot run here, or false. */
export function ipsecSkipReason(): string | false {
  if (!existsSync(CHARON)) return `strongSwan charon not found (${CHARON}): apt-get install strongswan-swanctl libcharon-extra-plugins`;
  if (!existsSync('/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so')) return 'strongSwan kernel-libipsec plugin missing (libcharon-extra-plugins)';
  if (!existsSync('/usr/sbin/swanctl')) return 'swanctl missing (strongswan-swanctl)';
  return false;
}

const PLUGINS = 'random nonce openssl gmp pem pkcs1 x509 pubkey sha1 sha2 hmac aes kdf kernel-libipsec kernel-netlink socket-default vici updown';

export interface CharonOptions {
  /** Extra lines inside `charon { }` (e.g. `retransmit_timeout = 2.0`). */
  extra?: string;
  /** IKE log level (default 1). */
  ikeLog?: number;
}

export class Charon {
  proc!: Proc;
  readonly dir: string;
  readonly uri: string;

  private constructor(readonly ns: Namespace, readonly name: string, lab: Lab) {
    this.dir = join(lab.dir, `charon-${name}`);
    this.uri = `unix://${join(this.dir, 'charon.vici')}`;
  }

  static async start(lab: Lab, ns: Namespace, name: string, opts: CharonOptions = {}): Promise<Charon> {
    const c = new Charon(ns, name, lab);
    mkdirSync(join(c.dir, 'run'), { recursive: true });
    writeFileSync(join(c.dir, 'strongswan.conf'), `charon {
  load_modular = no
  load = ${PLUGINS}
  install_routes = yes
  routing_table = 220
  keep_alive = 20s
  ${opts.extra ?? ''}
  filelog { log { path = ${join(c.dir, 'charon.log')}
    time_format = %T
    time_add_ms = yes
    flush_line = yes
    default = 1
    ike = ${opts.ikeLog ?? 1} } }
  plugins { vici { socket = ${c.uri} } }
}
`);
    await c.launch();
    return c;
  }

  /** Starts (or restarts) the daemon and waits for its VICI socket. */
  async launch(): Promise<void> {
    const sock = join(this.dir, 'charon.vici');
    this.proc = this.ns.spawn(['sh', '-c', `mount --bind ${join(this.dir, 'run')} /run && exec env STRONGSWAN_CONF=${join(this.dir, 'strongswan.conf')} ${CHARON}`]);
    const deadline = Date.now() + 10000;
    for (;;) {
      if (existsSync(sock)) {
        const r = await this.ns.exec(['swanctl', '--stats', '--uri', this.uri], { allowFail: true, timeoutMs: 5000 });
        if (r.code === 0) return;
      }
      if (!this.proc.running) throw new Error(`charon ${this.name} exited (${this.proc.exitCode}): ${this.proc.output}\n${this.log().slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`charon ${this.name} did not open ${sock}:\n${this.log().slice(-2000)}`);
      await sleep(50);
    }
  }

  log(): string {
    try { return readFileSync(join(this.dir, 'charon.log'), 'utf8'); } catch { return ''; }
  }

  /** `swanctl <args> --uri <this daemon>`; rejects with swanctl's output on failure. */
  async swanctl(args: string[], timeoutMs = 30000): Promise<string> {
    const r = await this.ns.exec(['swanctl', ...args, '--uri', this.uri], { allowFail: true, timeoutMs });
    if (r.code !== 0) throw new Error(`swanctl ${args.join(' ')} (${this.name}) failed (${r.code}):\n${r.stdout}${r.stderr}\n${this.log().slice(-1500)}`);
    return r.stdout;
  }

  /** Loads a swanctl.conf text (connections, pools, secrets). */
  async load(conf: string): Promise<void> {
    const file = join(this.dir, 'swanctl.conf');
    writeFileSync(file, conf);
    await this.swanctl(['--load-all', '--noprompt', '--file', file]);
  }

  initiate(child: string, timeoutS = 20): Promise<string> {
    return this.swanctl(['--initiate', '--child', child, '--timeout', String(timeoutS)], (timeoutS + 5) * 1000);
  }

  /** Rekeys CHILD_SAs by config name (all of them, e.g. every client's child on a server). */
  rekeyChild(child: string): Promise<string> {
    return this.swanctl(['--rekey', '--child', child]);
  }

  /** Rekeys one CHILD_SA by its unique id (`ChildSa.uniqueId`). */
  rekeyChildId(id: number): Promise<string> {
    return this.swanctl(['--rekey', '--child-id', String(id)]);
  }

  rekeyIke(ike: string): Promise<string> {
    return this.swanctl(['--rekey', '--ike', ike]);
  }

  /** Parsed `swanctl --list-sas --raw`: IKE SAs with their SPIs and CHILD_SAs with in/out SPIs. */
  async sas(): Promise<IkeSa[]> {
    return parseListSas(await this.swanctl(['--list-sas', '--raw']));
  }

  listSasText(): Promise<string> {
    return this.swanctl(['--list-sas']);
  }

  async stop(): Promise<void> {
    await this.proc.stop('SIGTERM', 3000);
  }
}

export interface ChildSa { name: string; uniqueId: number; state: string; spiIn: string; spiOut: string; packetsIn: number; packetsOut: number; localTs: string[]; remoteTs: string[] }
export interface IkeSa { name: string; uniqueId: number; remoteId: string; state: string; localHost: string; localPort: number; remoteHost: string; remotePort: number; spiI: string; spiR: string; initiator: boolean; children: ChildSa[]; vips: string[] }

/**
 * `--list-sas --raw` prints one VICI message per line as nested `key=value` / `key{...}` / `key[...]`
 * text; a small recursive reader turns it into objects.
 */
export function parseVici(text: string): Record<string, unknown> {
  let i = 0;
  const s = text;
  const ws = (): void => { while (i < s.length && /\s/.test(s[i]!)) i++; };
  const word = (): string => { const st = i; while (i < s.length && !/[\s{}[\]=]/.test(s[i]!)) i++; return s.slice(st, i); };
  const section = (): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    for (;;) {
      ws();
      if (i >= s.length || s[i] === '}') { i++; return o; }
      const k = word();
      ws();
      if (s[i] === '=') i++;
      const c = s[i];
      if (c === '{') { i++; o[k] = section(); }
      else if (c === '[') {
        i++;
        const arr: string[] = [];
        for (;;) { ws(); if (i >= s.length || s[i] === ']') { i++; break; } arr.push(word()); }
        o[k] = arr;
      } else if (k === '') { i++; }
      else o[k] = word();
    }
  };
  ws();
  const head = word(); // the message name (`list-sa event {...}`, `list-sas reply {}`)
  while (i < s.length && s[i] !== '{') i++;
  if (s[i] === '{') { i++; return { [head]: section() }; }
  return {};
}

export function parseListSas(text: string): IkeSa[] {
  const out: IkeSa[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const msg = parseVici(line);
    const body = (msg['list-sa'] ?? {}) as Record<string, Record<string, unknown>>;
    for (const [name, v] of Object.entries(body)) {
      const children: ChildSa[] = [];
      for (const c of Object.values((v['child-sas'] ?? {}) as Record<string, Record<string, unknown>>)) {
        children.push({
          name: String(c.name), uniqueId: Number(c.uniqueid ?? 0), state: String(c.state), spiIn: String(c['spi-in']), spiOut: String(c['spi-out']),
          packetsIn: Number(c['packets-in'] ?? 0), packetsOut: Number(c['packets-out'] ?? 0),
          localTs: (c['local-ts'] as string[]) ?? [], remoteTs: (c['remote-ts'] as string[]) ?? [],
        });
      }
      out.push({
        name, uniqueId: Number(v.uniqueid ?? 0), remoteId: String(v['remote-id'] ?? ''), state: String(v.state), localHost: String(v['local-host']), localPort: Number(v['local-port']),
        remoteHost: String(v['remote-host']), remotePort: Number(v['remote-port']),
        spiI: String(v['initiator-spi']), spiR: String(v['responder-spi']), initiator: v.initiator === 'yes',
        children, vips: ((v['local-vips'] as string[]) ?? []),
      });
    }
  }
  return out;
}

export interface PskClientConf {
  id: string; local: string; remote: string; remoteTs: string; serverId?: string; psk?: string; child?: string; conn?: string;
  /** IKE version (default 2). IKEv1 runs Main Mode + Mode Config (the virtual IP) + Quick Mode. */
  version?: 1 | 2;
  /** swanctl start_action of the child: 'start' initiates as soon as the config is loaded. */
  startAction?: 'none' | 'start' | 'trap';
}

/** A PSK road warrior asking for a virtual IP (`vips = 0.0.0.0`); IKEv2 unless `version: 1`. */
export function pskClient(o: PskClientConf): string {
  return `connections { ${o.conn ?? 'c'} { version = ${o.version ?? 2}
  local_addrs = ${o.local}
  remote_addrs = ${o.remote}
  vips = 0.0.0.0
  proposals = aes128-sha256-modp2048
  local { auth = psk
    id = ${o.id} }
  remote { auth = psk
    id = ${o.serverId ?? 'server@lab'} }
  children { ${o.child ?? 'c'} { remote_ts = ${o.remoteTs}
    esp_proposals = aes128-sha256${o.startAction ? `
    start_action = ${o.startAction}` : ''} } } } }
secrets { ike { secret = ${o.psk ?? 'lab-only-psk'} } }
`;
}

export const ikev2PskClient = (o: PskClientConf): string => pskClient({ ...o, version: 2 });
export const ikev1PskClient = (o: PskClientConf): string => pskClient({ ...o, version: 1 });

export interface PskServerConf { local: string; pool: string; localTs: string; id?: string; psk?: string; child?: string; conn?: string; version?: 1 | 2 }

/** A PSK responder handing out virtual IPs from a pool; any client id with the shared PSK. */
export function pskServer(o: PskServerConf): string {
  return `connections { ${o.conn ?? 's'} { version = ${o.version ?? 2}
  local_addrs = ${o.local}
  pools = lab
  proposals = aes128-sha256-modp2048
  local { auth = psk
    id = ${o.id ?? 'server@lab'} }
  remote { auth = psk }
  children { ${o.child ?? 's'} { local_ts = ${o.localTs}
    esp_proposals = aes128-sha256 } } } }
pools { lab { addrs = ${o.pool} } }
secrets { ike { secret = ${o.psk ?? 'lab-only-psk'} } }
`;
}

export const ikev2PskServer = (o: PskServerConf): string => pskServer({ ...o, version: 2 });
export const ikev1PskServer = (o: PskServerConf): string => pskServer({ ...o, version: 1 });

/** What a charon log says about one daemon's IKE: when it started and finished, how often it retransmitted. */
export interface CharonLogStats {
  /** Milliseconds since midnight (the log's `%T.ms` stamps) of the first event of each kind, or null. */
  initiated: number | null;
  ikeEstablished: number | null;
  childEstablished: number | null;
  /** `retransmit N of request` lines (IKEv2 and IKEv1), `giving up after N retransmits` lines. */
  retransmits: number;
  gaveUp: number;
  /** CHILD_SAs established in total (first ones and rekeys). */
  children: number;
  /** Initiator: IKE_SA_INIT answered with a COOKIE. Responder: COOKIEs sent, IKE_SA_INITs ignored by the (per-IP) half-open limit. */
  cookiesReceived: number;
  cookiesSent: number;
  blocked: number;
}

const STAMP = /^(\d\d):(\d\d):(\d\d)\.(\d{3}) /;

/** Reads a charon log written with `time_format = %T` and `time_add_ms = yes` (Charon.start does). */
export function charonLogStats(text: string): CharonLogStats {
  const st: CharonLogStats = { initiated: null, ikeEstablished: null, childEstablished: null, retransmits: 0, gaveUp: 0, children: 0, cookiesReceived: 0, cookiesSent: 0, blocked: 0 };
  for (const line of text.split('\n')) {
    const m = STAMP.exec(line);
    if (!m) continue;
    const at = ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]);
    if (/\] initiating (IKE_SA|Main Mode|Aggressive Mode)/.test(line)) st.initiated ??= at;
    else if (/\] IKE_SA \S+ established between/.test(line)) st.ikeEstablished ??= at;
    else if (/\] CHILD_SA \S+ established with SPIs/.test(line)) { st.childEstablished ??= at; st.children++; }
    else if (/\] retransmit \d+ of request/.test(line)) st.retransmits++;
    else if (/\] giving up after \d+ retransmits/.test(line)) st.gaveUp++;
    else if (/\] parsed IKE_SA_INIT response \d+ \[ N\(COOKIE\) \]/.test(line)) st.cookiesReceived++;
    else if (/\] sending COOKIE notify/.test(line)) st.cookiesSent++;
    else if (/\] ignoring IKE_SA setup from \S+, (per-IP )?half-open IKE_SA limit/.test(line)) st.blocked++;
  }
  return st;
}
