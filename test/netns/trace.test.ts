/**
 * Explain one packet, live: sluice runs the ESP/IKE NAT on NFQUEUE in a namespace gateway while a
 * scapy client negotiates (IKE_SA_INIT, IKE_AUTH) and sends ESP through it.
 *
 *   c1 192.168.1.11 ─ br0 192.168.1.1 [gw] wan0 203.0.113.1 ─ 203.0.113.10 [sv]
 *
 * At the same time, against the running sluice's control socket:
 * - `sluice trace --count 4 --filter 'kind=ike'` prints 4 lines: the NAT mapping and the source
 *   rewrite of the client's IKE, then exits by itself;
 * - `sluice tap -w FILE --count 6 --filter 'proto=esp'` writes 6 ESP packets with their trace lines
 *   as pcapng comments, read back by the project's reader and by tshark;
 * - `sluice sa --events --json` sees the client's SAs appear (new IKE, new outbound ESP, the
 *   inbound SPI learned, the two directions paired).
 * Then `sa --spi`, `sa delete`, `sa flush` on the live tables, `stats --watch` for two rounds, and
 * a reload through the socket and one by SIGHUP, each logged with its trigger.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep, until } from '../../src/lab/lab';
import { SLUICE_MAIN } from '../../src/lab/sluice';
import { readCapture } from '../../src/packet/pcap';
import { natTopo, runClients, serverResult, sluiceSkip, startServer, startSluice } from './fixtures/nat-lab';

const hasTshark = spawnSync('tshark', ['--version']).status === 0;

test('trace, tap and sa --events catch real packets and SAs on NFQUEUE; sa filters, delete, flush; stats --watch', { skip: sluiceSkip() }, async (t) => {
  const tp = await natTopo(`i14tr${process.pid % 1000}`, 1);
  t.after(() => tp.lab.cleanup());
  const { sl } = await startSluice(tp, (s) => t.diagnostic(s));
  const cli = (...args: string[]) => tp.gw.spawn([process.execPath, SLUICE_MAIN, ...args, '-s', sl.socket]);
  const tapFile = join(tp.lab.dir, 'tap.pcapng');

  const trace = cli('trace', '--count', '4', '--filter', 'kind=ike');
  const tap = cli('tap', '-w', tapFile, '--count', '6', '--filter', 'proto=esp');
  const events = cli('sa', '--events', '--json');
  // Both tracers are subscribed once stats counts them; the event stream starts with them.
  await until(async () => ((await sl.request('stats')) as { traces: number }).traces === 2, 15000, 'trace and tap subscribed');
  await sleep(500);

  const server = startServer(tp, 6);
  const clients = await runClients(tp, 10, () => []);
  const sv = await serverResult(server);
  t.diagnostic(`client: ${JSON.stringify(clients[0])} server: ${JSON.stringify(sv)}`);
  assert.equal(clients[0]!.good, 10, 'the client got its ESP replies through sluice');

  // trace: exactly 4 lines, then it ends by itself.
  assert.equal(await Promise.race([trace.exited, sleep(15000).then(() => 'timeout')]), 0, `trace exited by itself:\n${trace.output}`);
  const lines = trace.stdout.trim().split('\n');
  t.diagnostic(`trace:\n${lines.join('\n')}`);
  assert.equal(lines.length, 4);
  assert.match(lines[0]!, /^\S+ q5 postrouting br0>wan0 udp 192\.168\.1\.11:500 > 203\.0\.113\.10:500 ike IKE_SA_INIT initiator .* \| nat: mapping=192\.168\.1\.11→\(new host\) rewritten → accept \| accept rewrite src 192\.168\.1\.11→203\.0\.113\.1$/);
  assert.ok(lines.some((l) => / q5 prerouting wan0>- udp 203\.0\.113\.10:500 > 203\.0\.113\.1:500 ike IKE_SA_INIT response .* nat: mapping=203\.0\.113\.1→192\.168\.1\.11 spi=\w+ learned=seen rewritten → accept \| accept rewrite dst 203\.0\.113\.1→192\.168\.1\.11$/.test(l)),
    'the response: mapped back to the host by its IKE SPI');
  assert.match(trace.stderr, /4 packets traced/);

  // tap: 6 ESP packets with their lines as comments.
  assert.equal(await Promise.race([tap.exited, sleep(15000).then(() => 'timeout')]), 0, `tap exited by itself:\n${tap.output}`);
  const recs = [...readCapture(readFileSync(tapFile))];
  assert.equal(recs.length, 6);
  for (const r of recs) {
    assert.equal(r.data[0]! >> 4, 4, 'raw IPv4');
    assert.equal(r.data[9], 50, 'ESP');
    assert.match(r.comments?.[0] ?? '', /^\S+ q5 (postrouting|prerouting) .* esp .* \| nat: mapping=.* \| accept rewrite (src|dst) /);
  }
  if (hasTshark) {
    const ts = spawnSync('tshark', ['-r', tapFile, '-T', 'fields', '-e', 'esp.spi', '-e', 'frame.comment'], { encoding: 'utf8', env: { ...process.env, HOME: tp.lab.dir } });
    assert.equal(ts.status, 0, ts.stderr);
    const tl = ts.stdout.trim().split('\n');
    assert.equal(tl.length, 6);
    assert.ok(tl.every((l) => /^0x[0-9a-f]{8}\t.*nat: mapping=/.test(l)), ts.stdout);
  } else {
    assert.notEqual(process.env.CI, 'true', 'tshark is missing (scripts/setup.sh installs it)');
    t.diagnostic('tshark not installed: the pcapng file was read by the project\'s reader only');
  }

  // sa --events: the client's SAs appeared.
  await events.stop('SIGINT');
  const evs = events.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; sa: string; host: string });
  t.diagnostic(`events: ${evs.map((e) => `${e.event}/${e.sa}`).join(' ')}`);
  assert.ok(evs.some((e) => e.event === 'new' && e.sa === 'ike' && e.host === '192.168.1.11'), 'new IKE SA');
  assert.ok(evs.some((e) => e.event === 'new' && e.sa === 'esp_out'), 'new outbound ESP SA');
  assert.ok(evs.some((e) => e.event === 'learned' && e.sa === 'esp_in'), 'inbound SPI learned');
  assert.ok(evs.some((e) => e.event === 'paired' && e.sa === 'esp_in'), 'both directions of the CHILD_SA paired');

  // sa filters, delete, flush on the live tables.
  const run = async (...args: string[]) => { const p = cli(...args); await p.exited; assert.equal(p.exitCode, 0, p.output); return p.stdout; };
  const list = JSON.parse(await run('sa', '--json')) as { esp_in: { spi: string }[]; esp_out: { spi: string }[]; ike: unknown[] }[];
  assert.equal(list.length, 1);
  const spiIn = list[0]!.esp_in[0]!.spi;
  const one = JSON.parse(await run('sa', '--json', '--spi', spiIn)) as typeof list;
  assert.deepEqual([one[0]!.esp_in.length, one[0]!.esp_out.length, one[0]!.ike.length], [1, 0, 0]);
  assert.match(await run('sa', 'delete', '--spi', spiIn), /^1 SA record deleted$/m);
  assert.match(await run('sa', 'flush'), /^\d+ SA records? deleted$/m);
  assert.match(await run('sa'), /no mappings/);

  // stats --watch: two refreshes, then Ctrl-C ends it cleanly.
  const watch = cli('stats', '--watch', '-n', '0.3');
  await watch.waitFor(/engine\.packets[\s\S]*engine\.packets/, 10000);
  await watch.stop('SIGINT');
  assert.equal(watch.exitCode, 0, watch.output);
  assert.match(watch.stdout, /engine\.packets\s+\d+\s+\d+\.\d\/s/);

  // Every reload is logged with its trigger: the control socket and SIGHUP.
  assert.match(await run('reload'), /^reloaded /);
  sl.proc.child.kill('SIGHUP');
  await sl.proc.waitFor(/"trigger":"SIGHUP"[^\n]*"msg":"reloaded"|"msg":"reloaded"[^\n]*"trigger":"SIGHUP"/, 10000);
  assert.match(sl.proc.stderr, /"trigger":"control"/);
  await sl.stop();
});

test('trace and tap with workers: 2 over --queue-balance: every worker traces its own queue, the NAT owner the packets forwarded to it', { skip: sluiceSkip() }, async (t) => {
  // Three clients: their flows hash to different queues of the --queue-balance range (not guaranteed: said below).
  const tp = await natTopo(`i15tw${process.pid % 1000}`, 3);
  t.after(() => tp.lab.cleanup());
  const { sl } = await startSluice(tp, (s) => t.diagnostic(s), {}, 2);
  const cli = (...args: string[]) => tp.gw.spawn([process.execPath, SLUICE_MAIN, ...args, '-s', sl.socket]);
  const tapFile = join(tp.lab.dir, 'tap.pcapng');
  const trace = cli('trace', '--count', '8', '--filter', 'kind=ike');
  const tap = cli('tap', '-w', tapFile, '--count', '6', '--filter', 'proto=esp');
  const everyEsp = cli('trace', '--filter', 'proto=esp', '--json', '--queue-max', '65536');
  // Subscribed in every worker before stats counts them (the control answer waits for the workers).
  await until(async () => ((await sl.request('stats')) as { traces: number }).traces === 3, 15000, 'trace and tap subscribed');

  const server = startServer(tp, 6);
  const clients = await runClients(tp, 10, () => []);
  await serverResult(server);
  assert.deepEqual(clients.map((c) => c.good), [10, 10, 10], 'the clients got their ESP replies through sluice');

  assert.equal(await Promise.race([trace.exited, sleep(15000).then(() => 'timeout')]), 0, `trace exited by itself:\n${trace.output}`);
  const lines = trace.stdout.trim().split('\n');
  t.diagnostic(`trace:\n${lines.join('\n')}`);
  assert.equal(lines.length, 8);
  // Worker k binds queue 5+k and says so; the owner decides the IKE the workers forward (new SAs are the owner's).
  for (const l of lines) {
    const m = /^\S+ q(\d) (w\d|owner) (postrouting|prerouting) \S+ udp .* ike /.exec(l);
    assert.ok(m, `a thread on every line: ${l}`);
    if (m[2] !== 'owner') assert.equal(`w${Number(m[1]) - 5}`, m[2], `worker ${m[2]} traced its own queue: ${l}`);
  }
  assert.ok(lines.some((l) => / w\d postrouting br0>wan0 udp 192\.168\.1\.11:500 > 203\.0\.113\.10:500 ike IKE_SA_INIT initiator .*\| nat: → hold \| hold$/.test(l)),
    'the worker holds the new IKE SA and forwards it');
  assert.ok(lines.some((l) => / owner postrouting br0>wan0 udp 192\.168\.1\.11:500 > 203\.0\.113\.10:500 ike IKE_SA_INIT initiator .*\| nat: mapping=192\.168\.1\.11→.* rewritten → accept \| accept rewrite src 192\.168\.1\.11→203\.0\.113\.1$/.test(l)),
    'the owner maps it');
  assert.match(trace.stderr, /8 packets traced/);

  assert.equal(await Promise.race([tap.exited, sleep(15000).then(() => 'timeout')]), 0, `tap exited by itself:\n${tap.output}`);
  const recs = [...readCapture(readFileSync(tapFile))];
  assert.equal(recs.length, 6);
  const threads = new Set<string>();
  for (const r of recs) {
    assert.equal(r.data[9], 50, 'ESP');
    // Forwarded while the owner learns the inbound SPI (the worker's line: hold), or translated.
    const m = /^\S+ q(\d) (w\d|owner) (postrouting|prerouting) .* esp .* \| nat: .*\| (hold|accept rewrite (src|dst) )/.exec(r.comments?.[0] ?? '');
    assert.ok(m, r.comments?.[0]);
    if (m[2] !== 'owner') assert.equal(`w${Number(m[1]) - 5}`, m[2]);
    threads.add(`q${m[1]} ${m[2]}`);
  }
  t.diagnostic(`tap: ESP traced by ${[...threads].join(', ')}; queues ${JSON.stringify((await sl.stats()).queues.map((q) => [q.queue, q.received]))}`);
  // Every queue that received ESP has its worker's lines; nothing was missed (the client kept up).
  await sleep(300);
  await everyEsp.stop('SIGINT');
  const esp = everyEsp.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { queue: number; thread: string; verdict: string });
  const received = (await sl.stats()).queues.filter((q) => (q.received as number) > 0).map((q) => q.queue!);
  const byWorker = new Map<string, number>();
  for (const e of esp) {
    if (e.thread !== 'owner') assert.equal(e.thread, `w${e.queue - 5}`);
    byWorker.set(`q${e.queue} ${e.thread}`, (byWorker.get(`q${e.queue} ${e.thread}`) ?? 0) + 1);
  }
  t.diagnostic(`all ESP: ${esp.length} lines, ${JSON.stringify([...byWorker])}; queues that received packets: ${received.join(', ')}${received.length < 2 ? ' (every flow hashed to one queue this run: one worker traced)' : ''}`);
  for (const q of received) assert.ok(byWorker.has(`q${q} w${q - 5}`), `worker ${q - 5} traced ESP of its queue ${q}`);
  assert.ok(esp.length >= 60, `every ESP packet of 3 clients x 10 round trips at least once (${esp.length})`);
  assert.match(everyEsp.stderr, /packets traced$/m, 'no packet missed');
  await until(async () => ((await sl.request('stats')) as { traces: number }).traces === 0, 5000, 'the traces ended');
  await sl.stop();
});
