/** `sluice rules -c FILE`: what the kernel needs for a config, printed, applied or removed. */
import { loadConfig } from '../config/load';
import { applyRuleSet, removeRuleSet, renderNft, renderRuleSet } from '../rules';
import { configFile, parse, UsageError } from './args';
import { collectRules } from './pipeline';

const HELP = `Usage: sluice rules [-c FILE] [--iptables | --nft] [--cleanup] [--apply | --remove]

Prints what the config needs from the kernel, with a comment on every rule:
  - iptables-restore input (fed with --noflush, so your own rules stay): the NFQUEUE rules for
    each queue's capture list and each stage (NAT: raw CT --notrack, mangle queue rules,
    FORWARD accepts for a default-drop firewall), with --queue-bypass where fail_open is set;
  - ip rule / ip route lines for fwmark steering, and optional rt_tables names.
The default output is a commented document: the iptables part is iptables-restore input, the
policy routing part is commands, and the removal of all of it is listed at the end.

  --iptables   print only the iptables-restore input (e.g. for iptables-restore --test)
  --cleanup    with --iptables: print the removal (iptables-restore input with -D lines);
               with --nft: the nft -f input that deletes table inet sluice
  --nft        the same netfilter rules as one nftables table (table inet sluice) for nft -f:
               applied atomically, removed with nft delete table inet sluice. IPv4 only, as the
               iptables rules. The queue statement needs the kernel's nft_queue (CONFIG_NFT_QUEUE);
               ip rule / ip route lines follow as comments
  --apply      apply now, idempotently (checks each rule first; needs root)
  --remove     remove what --apply added (needs root)

Without -c the config is $SLUICE_CONFIG, else /etc/sluice/sluice.yaml.
`;

export async function rulesCommand(argv: string[]): Promise<number> {
  const a = parse(argv, {
    config: { type: 'string', short: 'c' }, iptables: { type: 'boolean' }, cleanup: { type: 'boolean' },
    apply: { type: 'boolean' }, remove: { type: 'boolean' }, nft: { type: 'boolean' },
  }, HELP);
  if (!a) return 0;
  a.values.config = configFile(a.values.config);
  if (a.values.apply && a.values.remove) throw new UsageError('--apply and --remove exclude each other');
  if (a.values.nft && a.values.iptables) throw new UsageError('--nft and --iptables exclude each other');
  if (a.values.nft && (a.values.apply || a.values.remove)) throw new UsageError('--nft prints the ruleset: apply it with `nft -f FILE`, remove it with `nft delete table inet sluice`');
  const rs = collectRules(loadConfig(a.values.config));
  if (a.values.nft) {
    const nft = renderNft(rs);
    process.stdout.write(a.values.cleanup ? nft.remove : nft.text);
    return 0;
  }
  if (a.values.apply || a.values.remove) {
    const report = a.values.apply ? applyRuleSet(rs) : removeRuleSet(rs);
    const verb = a.values.apply ? 'apply' : 'remove';
    process.stdout.write(report.changed.length ? `${report.changed.join('\n')}\n` : `nothing to ${verb}: ${report.unchanged} item(s) already in place\n`);
    return 0;
  }
  const text = renderRuleSet(rs);
  if (a.values.iptables) {
    process.stdout.write(a.values.cleanup ? text.restoreRemove : text.restore);
    return 0;
  }
  if (a.values.cleanup) throw new UsageError('--cleanup goes with --iptables (the full output already lists the removal)');
  process.stdout.write(text.text);
  return 0;
}
