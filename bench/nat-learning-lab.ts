/**
 * Added latency of SPI learning in the namespace lab: 16 scripted IPsec hosts (learn_peer.py, raw
 * ESP) connect through sluice at one instant, stay silent --idle s after their IKE_AUTH, then send
 * 5 packets 200 ms apart. First-reply latency (first packet → its reply decrypted at the host)
 * against the same hosts' later packets' round trip in the same round (the baseline: everything
 * learned). Needs root.   node dist/bench/nat-learning-lab.js [--hosts 16] [--idle 3] [--rounds 3]
 */
import { natTopo, startSluice } from '../test/netns/fixtures/nat-lab';
import { scenario } from '../test/netns/fixtures/learn-lab';
import { labSkipReason } from '../src/lab/lab';
import { numArg } from './args';

const HOSTS = numArg('--hosts', 16);
const IDLE = numArg('--idle', 3);
const ROUNDS = numArg('--rounds', 3);
const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]!; };

async function main(): Promise<void> {
  const skip = labSkipReason();
  if (skip) { console.error(`nat-learning-lab: ${skip}`); process.exit(2); }
  console.log(`# SPI learning latency, lab: ${HOSTS} hosts connect at once, silent ${IDLE} s, then 5 packets 200 ms apart (raw ESP)`);
  console.log('| round | first reply p50 ms | p99 ms | steady RTT p50 ms | p99 ms | p50 ratio | p99 ratio | IKE retx | misrouted | learned reply / elim. / window |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  const r50: number[] = [];
  const r99: number[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const tp = await natTopo('nlb', HOSTS);
    try {
      const { sl } = await startSluice(tp, () => {});
      const { rs } = await scenario(tp, [String(IDLE + 5)], () => ['--idle', String(IDLE), '--count', '5', '--interval', '0.2', '--until', String(IDLE + 3)]);
      const ok = rs.filter((x) => x !== null);
      if (ok.some((x) => x.first_reply_ms < 0)) throw new Error(`a host got no reply: ${JSON.stringify(ok.map((x) => x.first_reply_ms))}`);
      const first = ok.map((x) => x.first_reply_ms);
      const steady = ok.flatMap((x) => x.rtt_ms.slice(1));
      const [f50, f99, s50, s99] = [pct(first, 0.5), pct(first, 0.99), pct(steady, 0.5), pct(steady, 0.99)];
      r50.push(f50 / s50);
      r99.push(f99 / s99);
      const c = await Promise.all(['nat.learned_reply', 'nat.learned_elimination', 'nat.window_learned'].map((n) => sl.counter(n)));
      const retx = ok.reduce((a, x) => a + x.ike_retx, 0);
      const mis = ok.reduce((a, x) => a + x.misrouted, 0);
      console.log(`| ${r} | ${f50} | ${f99} | ${s50} | ${s99} | ${(f50 / s50).toFixed(2)} | ${(f99 / s99).toFixed(2)} | ${retx} | ${mis} | ${c.join(' / ')} |`);
      await sl.stop();
    } finally {
      await tp.lab.cleanup();
    }
  }
  console.log(`\nmedian of per-round ratios (first reply / steady RTT): p50 ${pct(r50, 0.5).toFixed(2)}×, p99 ${pct(r99, 0.5).toFixed(2)}×`);
}

main().catch((e) => { console.error(e); process.exit(1); });
