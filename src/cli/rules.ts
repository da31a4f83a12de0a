/** `sluice rules -c FILE`: what the kernel needs for a config, printed, applied, checked or removed. */
import { loadConfig } from '../config/load';
import {
  applyNft, applyRuleSet, checkIptables, checkNft, detectBackend, ipv6Host, ipv6Warnings, nftLoadable,
  removeNftTable, removeRuleSet, renderNft, nftTableName, renderRuleSet, defaultRun, readIptOwned, iptablesBinary, legacyTables, type Backend, type Drift,
  type RulesConfig,
} from '../rules';
import { configFile, parse, UsageError } from './args';
import { collectRules } from './pipeline';

const HELP = `Usage: sluice rules [-c FILE] [--iptables | --nft] [--cleanup]
       sluice rules [-c FILE] (--apply | --remove | --check) [--backend auto|iptables|iptables-legacy|nft] [--position first|last|N]

Prints what the config needs from the kernel, with a comment on every rule:
  - iptables-restore input (fed with --noflush, so your own rules stay): sluice's rules live in its
    own chains (SLUICE-PREROUTING, SLUICE-FORWARD, ... in each table used), and each built-in
    chain gets one jump into them at rules.position (default first), so a DROP or ACCEPT of your
    firewall earlier in the chain cannot shadow them;
  - ip rule / ip route lines for fwmark steering, and optional rt_tables names.
The default output is a commented document; the removal of all of it is listed at the end.

  --iptables   print only the iptables-restore input (e.g. for iptables-restore --test)
  --cleanup    with --iptables: print the removal (jumps deleted, chains emptied and deleted);
               with --nft: the nft -f input that deletes table inet sluice
  --nft        print the same netfilter rules as one nftables table (table inet sluice) for nft -f.
               IPv4 only, as the iptables rules. The queue statement needs the kernel's nft_queue
               (CONFIG_NFT_QUEUE). With --apply/--remove/--check: the same as --backend nft
  --apply      make the kernel hold what the config needs (needs root). iptables: one
               iptables-restore --noflush per table (atomic per table), then ip routes and rules;
               nft: one nft -f transaction, then the routes and rules. If a step fails, what the
               earlier steps changed is rolled back. Applying twice changes nothing
  --remove     remove sluice's chains and jumps (iptables), its table (nft), and the config's ip
               rules, routes and rt_tables names (needs root)
  --check      compare the kernel with the config: missing or extra rules in sluice's chains,
               missing or misplaced jumps, rules before a jump that end the chain, missing ip rules
               and routes; IPv6 coverage warnings. Exit 0 when nothing differs, 1 otherwise
  --backend B  auto (default: rules.backend): nft when the host uses nftables natively and the
               kernel can load the ruleset, else iptables (the reason is printed); iptables,
               iptables-legacy (that binary) or nft force one
  --position P first, last or a rule number: where each jump goes (default: rules.position)

The chain names come from rules.chain_prefix (default SLUICE; one prefix per sluice instance).
docs/operator.md "sluice's chains and where they sit in yours" explains the layout and rollback.

Without -c the config is $SLUICE_CONFIG, else /etc/sluice/sluice.yaml.
`;

function parsePosition(v: string): RulesConfig['position'] {
  if (v === 'first' || v === 'last') return v;
  if (/^[1-9]\d{0,5}$/.test(v)) return Number(v);
  throw new UsageError(`--position: first, last or a rule number from 1, not ${JSON.stringify(v)}`);
}

export async function rulesCommand(argv: string[]): Promise<number> {
  const a = parse(argv, {
    config: { type: 'string', short: 'c' }, iptables: { type: 'boolean' }, cleanup: { type: 'boolean' },
    apply: { type: 'boolean' }, remove: { type: 'boolean' }, check: { type: 'boolean' }, nft: { type: 'boolean' },
    backend: { type: 'string' }, position: { type: 'string' },
  }, HELP);
  if (!a) return 0;
  const v = a.values;
  v.config = configFile(v.config);
  const actions = [v.apply, v.remove, v.check].filter(Boolean).length;
  if (actions > 1) throw new UsageError('--apply, --remove and --check exclude each other');
  if (v.nft && v.iptables) throw new UsageError('--nft and --iptables exclude each other');
  if (v.backend !== undefined && !['auto', 'iptables', 'iptables-legacy', 'nft'].includes(v.backend)) throw new UsageError(`--backend: auto, iptables, iptables-legacy or nft, not ${JSON.stringify(v.backend)}`);
  const cfg = await loadConfig(v.config);
  const rulesCfg: RulesConfig = {
    ...cfg.rules,
    ...(v.position !== undefined ? { position: parsePosition(v.position) } : {}),
    ...(v.backend !== undefined ? { backend: v.backend as RulesConfig['backend'] } : v.nft ? { backend: 'nft' } : v.iptables ? { backend: 'iptables' } : {}),
  };
  const rs = collectRules(cfg);
  const opts = { rules: rulesCfg };
  if (actions === 0) {
    if (v.nft) {
      const nft = renderNft(rs, nftTableName(rulesCfg.chain_prefix));
      process.stdout.write(v.cleanup ? nft.remove : nft.text);
      return 0;
    }
    const text = renderRuleSet(rs, rulesCfg);
    if (v.iptables) {
      process.stdout.write(v.cleanup ? text.restoreRemove : text.restore);
      return 0;
    }
    if (v.cleanup) throw new UsageError('--cleanup goes with --iptables or --nft (the full output already lists the removal)');
    process.stdout.write(text.text);
    return 0;
  }
  if (v.remove) {
    // Everything sluice owns, wherever it is: iptables (both variants when legacy tables exist) and nft.
    const rep = removeRuleSet(rs, opts);
    const legacyToo = rulesCfg.backend === 'iptables-legacy' || ((legacyTables() ?? []).length > 0 && iptablesBinary(defaultRun).bin === 'iptables-legacy');
    if (legacyToo) rep.changed.push(...removeRuleSet(rs, { ...opts, iptables: 'iptables-legacy' }).changed);
    rep.changed.push(...removeNftTable(opts));
    process.stdout.write(rep.changed.length ? `${rep.changed.join('\n')}\n` : 'nothing to remove\n');
    return 0;
  }
  const backend = chooseBackend(rulesCfg, rs);
  const iptOpts = { ...opts, iptables: backend.bin };
  if (v.apply) {
    const rep = backend.backend === 'nft' ? applyNft(rs, opts) : applyRuleSet(rs, iptOpts);
    process.stderr.write(`note: backend ${backend.backend === 'nft' ? 'nft' : backend.bin} (${backend.why})\n`);
    for (const n of [...rep.notes, ...backend.notes]) process.stderr.write(`note: ${n}\n`);
    for (const w of ipv6Warnings({ policy: cfg.policy, steer: cfg.steer }, ipv6Host(defaultRun))) process.stderr.write(`${w}\n`);
    process.stdout.write(rep.changed.length ? `${rep.changed.join('\n')}\n` : `nothing to apply: ${rep.unchanged} item(s) already in place\n`);
    return 0;
  }
  // --check
  const drift: Drift[] = backend.backend === 'nft' ? checkNft(rs, opts) : checkIptables(rs, iptOpts);
  const out: string[] = [`backend: ${backend.backend === 'nft' ? 'nft' : backend.bin} (${backend.why})`];
  for (const n of backend.notes) out.push(`note: ${n}`);
  const real = drift.filter((d) => !d.warn);
  for (const d of drift) out.push(`${d.warn ? 'warning' : 'DRIFT'} ${d.where}: ${d.what}`);
  const v6 = ipv6Warnings({ policy: cfg.policy, steer: cfg.steer }, ipv6Host(defaultRun));
  out.push(...v6);
  out.push(real.length ? `${real.length} difference(s). \`sluice rules -c ${v.config} --apply\` makes the kernel match (it changes only sluice's chains, jumps, table, routes and rules).`
    : 'in sync: the kernel holds what this config needs');
  process.stdout.write(`${out.join('\n')}\n`);
  return real.length ? 1 : 0;
}

function chooseBackend(cfg: RulesConfig, rs: ReturnType<typeof collectRules>): { backend: Backend; bin: string; why: string; notes: string[] } {
  const ipt = cfg.backend === 'iptables-legacy' ? { bin: 'iptables-legacy', why: 'chosen in rules.backend / --backend' } : iptablesBinary(defaultRun);
  if (cfg.backend === 'iptables-legacy') return { backend: 'iptables', bin: ipt.bin, why: ipt.why, notes: [] };
  const iptables = (why: string, notes: string[] = []) => ({ backend: 'iptables' as const, bin: ipt.bin, why: ipt.bin === 'iptables' ? why : `${why}; ${ipt.bin}: ${ipt.why}`, notes });
  if (cfg.backend === 'iptables') return iptables('chosen in rules.backend / --backend');
  if (cfg.backend === 'nft') return { backend: 'nft', bin: 'nft', why: 'chosen in rules.backend / --backend', notes: [] };
  const d = detectBackend(defaultRun, cfg.chain_prefix, readIptOwned(cfg.chain_prefix, { iptables: ipt.bin }));
  if (d.backend === 'iptables') return iptables(d.why);
  const refused = nftLoadable(defaultRun, rs, cfg.chain_prefix);
  if (refused) return iptables(`${d.why}, but the kernel refuses the nft ruleset`, [refused.split('\n').slice(-1)[0]!]);
  return { ...d, bin: 'nft', notes: [] };
}
