/**
 * The shipped systemd units (packaging/systemd), without systemd as PID 1 (this machine has none):
 *   - `systemd-analyze verify` finds nothing to say about sluice.service and sluice@lab.service
 *     (a misspelled key in a copy is the control that it would);
 *   - the units' own ExecStartPre / ExecStart / ExecStopPost lines run, exactly as written but for
 *     /usr/bin/sluice (a wrapper running this checkout) and ${SLUICE_CONFIG} (a lab config), under
 *     `setpriv` with what the unit grants: a non-root uid, the unit's AmbientCapabilities and
 *     CapabilityBoundingSet only, NoNewPrivileges, the unit's Environment. In a namespace: the
 *     rules go in, the engine binds its queue, sends READY=1 and watchdog pings to a NOTIFY_SOCKET
 *     (a Python datagram receiver), answers root's `sluice stats`, counts a queued packet,
 *     reloads on SIGHUP (RELOADING=1, READY=1), stops on SIGTERM (STOPPING=1), and the
 *     ExecStopPost line removes the rules; its metrics.listen is scraped (labelled counters, gauges).
 *     Control: the same ExecStart without CAP_NET_ADMIN fails.
 * NOT exercised (no systemd as PID 1 here): systemd itself starting the unit — User=sluice,
 * RuntimeDirectory/StateDirectory creation, ProtectSystem and the other sandboxing, Restart=,
 * WatchdogSec enforcement, `systemctl reload`, and $SERVICE_RESULT set by systemd (set by hand here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Lab, labSkipReason } from './lab';
import { SLUICE_MAIN } from '../../src/lab/sluice';

const UNITS = resolve(__dirname, '../../../packaging/systemd');
const UID = 61234; // the sluice system user's stand-in: no account, no files of its own

function missingTools(): string | false {
  for (const t of ['systemd-analyze', 'setpriv', '/usr/bin/python3']) {
    try { execFileSync(t, ['--version'], { stdio: 'ignore' }); } catch { return `${t} not available (systemd / util-linux / python3 packages)`; }
  }
  return false;
}
const skip = labSkipReason() || missingTools();
if (skip) {
  console.log(`# skipping systemd: ${skip}`);
  if (process.env.CI === 'true') throw new Error(`systemd units test cannot run under CI: ${skip}`);
}

/** `Key=value` lines of the [Service] section, in order (repeated keys kept). */
function serviceLines(unit: string): [string, string][] {
  const body = unit.split(/^\[Service\]$/m)[1]!.split(/^\[/m)[0]!;
  return body.split('\n').filter((l) => /^\w+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

/** systemd's command line splitting, enough for the units' lines: words, 'single' and "double" quotes. */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

const RECEIVER = `
import socket, sys, json, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
print('bound', flush=True)
while True:
    print(json.dumps(s.recv(4096).decode()), flush=True)
`;

test('systemd-analyze verify accepts both units; a misspelled key is reported', { skip, timeout: 60000 }, async (t) => {
  const lab = await Lab.create('sdv');
  t.after(() => lab.cleanup());
  const wrapper = lab.path('sluice');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${SLUICE_MAIN} "$@"\n`, { mode: 0o755 });
  const plain = readFileSync(join(UNITS, 'sluice.service'), 'utf8');
  const templ = readFileSync(join(UNITS, 'sluice@.service'), 'utf8');
  // verify prints its findings on stderr and may still exit 0: capture both.
  const run = (name: string, text: string): string => {
    const file = lab.path(name);
    writeFileSync(file, text.replaceAll('/usr/bin/sluice', wrapper));
    const r = execFileSync('sh', ['-c', 'systemd-analyze verify "$1" 2>&1; echo "exit $?"', 'sh', file], { encoding: 'utf8' });
    return r;
  };
  assert.equal(run('sluice.service', plain), 'exit 0\n');
  assert.equal(run('sluice@lab.service', templ), 'exit 0\n');
  const broken = run('broken.service', plain.replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes'));
  assert.match(broken, /Unknown key 'NoNewPrivilege'/);
  // sluice.sysusers.conf creates the system user the units name (into an empty root).
  const root = lab.path('sysroot');
  mkdirSync(join(root, 'etc'), { recursive: true });
  for (const f of ['passwd', 'group', 'shadow', 'gshadow']) writeFileSync(join(root, 'etc', f), '');
  execFileSync('systemd-sysusers', [`--root=${root}`, join(UNITS, 'sluice.sysusers.conf')], { stdio: 'ignore' });
  assert.match(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^sluice:x:\d+:\d+:[^:]*:\/var\/lib\/sluice:\/usr\/sbin\/nologin$/m);
  for (const u of [plain, templ]) {
    assert.equal(new Map(serviceLines(u)).get('User'), 'sluice');
    const s = new Map(serviceLines(u));
    assert.equal(s.get('Type'), 'notify');
    assert.equal(s.get('ExecReload'), '/bin/kill -HUP $MAINPID');
    assert.equal(s.get('Restart'), 'on-failure');
    assert.equal(s.get('AmbientCapabilities'), 'CAP_NET_ADMIN CAP_NET_RAW');
    assert.equal(s.get('CapabilityBoundingSet'), 'CAP_NET_ADMIN CAP_NET_RAW');
    assert.equal(s.get('NoNewPrivileges'), 'yes');
    assert.equal(s.get('ProtectSystem'), 'strict');
    assert.match(s.get('RuntimeDirectory')!, /^sluice(\/%i)?$/);
    assert.match(s.get('StateDirectory')!, /^sluice(\/%i)?$/);
    assert.equal(s.get('ConfigurationDirectory'), 'sluice');
    assert.ok(serviceLines(u).some(([k, v]) => k === 'ExecStartPre' && /sluice check/.test(v)));
  }
});

test('the unit\'s commands run under setpriv with only its capabilities: ready, stats, reload, stop, rules out', { skip, timeout: 90000 }, async (t) => {
  const lab = await Lab.create('sdrun');
  t.after(() => lab.cleanup());
  chmodSync(lab.dir, 0o755);
  const ns = lab.ns('gw');
  await ns.sh('ip link set lo up');
  const wrapper = lab.path('sluice');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${SLUICE_MAIN} "$@"\n`, { mode: 0o755 });
  // RuntimeDirectory=sluice as systemd would make it: the service user's, 0700, in a root-owned parent.
  const runtime = lab.path('run');
  mkdirSync(runtime, { mode: 0o700 });
  chownSync(runtime, UID, UID);
  // StateDirectory=sluice likewise (the config's state_dir; /var/lib/sluice by default, as in the unit).
  const state = lab.path('state');
  mkdirSync(state, { mode: 0o700 });
  chownSync(state, UID, UID);
  const config = lab.path('sluice.yaml');
  writeFileSync(config, `queues:
  - num: 7
    fail_open: true
    capture:
      - chain: input
        proto: udp
        dport: 9999
control:
  socket: ${runtime}/sluice.sock
state_dir: ${state}
metrics:
  listen: 127.0.0.1:9477
log:
  level: info
`, { mode: 0o644 });

  const unit = readFileSync(join(UNITS, 'sluice.service'), 'utf8');
  const lines = serviceLines(unit);
  const get = (k: string): string[] => lines.filter(([key]) => key === k).map(([, v]) => v);
  const env: Record<string, string> = {};
  for (const e of get('Environment')) { const i = e.indexOf('='); env[e.slice(0, i)] = e.slice(i + 1); }
  env.SLUICE_CONFIG = config;
  const caps = (k: string): string => get(k)[0]!.split(/\s+/).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
  const setpriv = (ambient: string, bounding: string): string[] => ['setpriv', `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups',
    `--inh-caps=-all,${ambient}`, `--ambient-caps=-all,${ambient}`, `--bounding-set=-all,${bounding}`, ...(get('NoNewPrivileges')[0] === 'yes' ? ['--no-new-privs'] : [])];
  const priv = setpriv(caps('AmbientCapabilities'), caps('CapabilityBoundingSet'));
  // systemd expands ${VAR} in command lines and leaves $VAR for the shell in `sh -c '...'`.
  const argv = (line: string, extra: Record<string, string> = {}): string[] => [
    'env', ...Object.entries({ ...env, ...extra }).map(([k, v]) => `${k}=${v}`), ...priv,
    ...words(line.replace(/\$\{(\w+)\}/g, (_, k: string) => env[k] ?? '')).map((w) => w.replaceAll('/usr/bin/sluice', wrapper)),
  ];
  const iptables = async (): Promise<string> => (await ns.exec(['iptables-save', '-t', 'mangle'])).stdout;

  for (const pre of get('ExecStartPre')) {
    const r = await ns.exec(argv(pre), { allowFail: true });
    assert.equal(r.code, 0, `${pre}: ${r.stderr}`);
  }
  assert.match(await iptables(), /-A SLUICE-INPUT .*--dport 9999 .*NFQUEUE --queue-num 7 --queue-bypass/, 'ExecStartPre applied the rules');

  // Control: without CAP_NET_ADMIN the same ExecStart cannot bind the queue.
  const noAdmin = await ns.exec(['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...setpriv('+net_raw', '+net_raw'),
    ...words(get('ExecStart')[0]!.replace(/\$\{(\w+)\}/g, (_, k: string) => env[k] ?? '')).map((w) => w.replaceAll('/usr/bin/sluice', wrapper))], { allowFail: true, timeoutMs: 15000 });
  assert.notEqual(noAdmin.code, 0);
  assert.match(noAdmin.stderr, /CAP_NET_ADMIN/);

  const notifySocket = lab.path('notify');
  const receiver = ns.spawn(['/usr/bin/python3', '-c', RECEIVER, notifySocket]);
  lab.track(receiver);
  await receiver.waitFor(/bound/);
  const main = ns.spawn(argv(get('ExecStart')[0]!, { NOTIFY_SOCKET: notifySocket, WATCHDOG_USEC: '400000' }));
  lab.track(main);
  await receiver.waitFor(/"READY=1\\nSTATUS=running: queues 7; stages none\\nMAINPID=\d+\\n"/, 15000);
  const status = readFileSync(`/proc/${main.pid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Uid:\\s+${UID}\\s`, 'm'));
  assert.match(status, /^CapEff:\s+0000000000003000$/m, 'CAP_NET_ADMIN and CAP_NET_RAW only');
  assert.match(status, /^CapBnd:\s+0000000000003000$/m);
  assert.match(status, /^NoNewPrivs:\s+1$/m);
  const mainPid = /MAINPID=(\d+)/.exec(receiver.stdout)![1];
  assert.equal(Number(mainPid), main.pid, 'the notifying process is the ExecStart process (NotifyAccess=main)');

  await ns.sh('python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b\'x\', (\'127.0.0.1\', 9999)) for _ in range(3)]"');
  const stats = await ns.exec([process.execPath, SLUICE_MAIN, 'stats', '-c', config, '--json']);
  const reply = JSON.parse(stats.stdout) as { queues: { queue: number; received: number }[] };
  assert.equal(reply.queues[0]!.queue, 7);
  assert.equal(reply.queues[0]!.received, 3, 'root\'s sluice stats answered by the capability-only service');
  await receiver.waitFor(/"WATCHDOG=1\\n"[\s\S]*"WATCHDOG=1\\n"/, 5000);
  // Prometheus, scraped from the running service: the queue's counter with its label, levels as gauges.
  const scrape = (await ns.exec(['curl', '-sf', 'http://127.0.0.1:9477/metrics'])).stdout;
  assert.match(scrape, /^# TYPE sluice_queue_packets_total counter$/m);
  assert.match(scrape, /^sluice_queue_packets_total\{queue="7"\} 3$/m);
  assert.match(scrape, /^sluice_packets_total 3$/m);
  assert.match(scrape, /^sluice_verdicts_total\{verdict="accept"\} 3$/m);
  assert.match(scrape, /^# TYPE sluice_held_packets gauge$/m);
  assert.match(scrape, /^sluice_queue_held_outstanding\{queue="7"\} 0$/m);
  assert.match(scrape, /^process_cpu_seconds_total /m);

  process.kill(main.pid, 'SIGHUP'); // ExecReload=/bin/kill -HUP $MAINPID
  // Watchdog pings go on during the reload (the event loop keeps turning while the config is read).
  await receiver.waitFor(/"RELOADING=1\\nMONOTONIC_USEC=\d+\\nSTATUS=reloading\\n"\n(?:"WATCHDOG=1\\n"\n)*"READY=1\\nSTATUS=running \(reloaded/, 10000);
  assert.equal(await main.stop('SIGTERM', 10000), 0, main.output);
  await receiver.waitFor(/"STOPPING=1\\nSTATUS=stopping\\n"/, 2000);

  const post = await ns.exec(argv(get('ExecStopPost')[0]!, { SERVICE_RESULT: 'success' }), { allowFail: true });
  assert.equal(post.code, 0, post.stderr);
  assert.doesNotMatch(await iptables(), /sluice/, 'ExecStopPost removed the rules after a clean stop');
  t.diagnostic(`watchdog pings at WATCHDOG_USEC=400000: ${receiver.stdout.split('WATCHDOG=1').length - 1}`);
});

test('after a failure ExecStopPost keeps the rules (each queue\'s fail_open decides until the restart)', { skip, timeout: 30000 }, async (t) => {
  const lab = await Lab.create('sdfail');
  t.after(() => lab.cleanup());
  const ns = lab.ns('gw');
  const unit = readFileSync(join(UNITS, 'sluice.service'), 'utf8');
  const post = serviceLines(unit).find(([k]) => k === 'ExecStopPost')![1];
  // The line's shell part, with a stand-in for sluice that records that it ran.
  const mark = lab.path('removed');
  const w = words(post).map((x) => x.replaceAll('exec /usr/bin/sluice rules --remove -c "$SLUICE_CONFIG"', `echo "$SLUICE_CONFIG" > ${mark}`));
  for (const result of ['exit-code', 'watchdog', 'signal', 'core-dump', 'timeout']) {
    const r = await ns.exec(['env', `SERVICE_RESULT=${result}`, 'SLUICE_CONFIG=/x.yaml', ...w], { allowFail: true });
    assert.equal(r.code, 0, `${result}: ${r.stderr}`);
    assert.throws(() => readFileSync(mark), `${result}: rules left in place`);
  }
  await ns.exec(['env', 'SERVICE_RESULT=success', 'SLUICE_CONFIG=/x.yaml', ...w]);
  assert.equal(readFileSync(mark, 'utf8'), '/x.yaml\n', 'a clean stop removes them');
});
