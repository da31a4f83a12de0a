/** The `sluice` command as an operator meets it: help, exit codes, config errors, every example. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SLUICE_MAIN } from '../src/lab/sluice';

const ROOT = resolve(__dirname, '../..');
const sluice = (...args: string[]) => spawnSync(process.execPath, [SLUICE_MAIN, ...args], { encoding: 'utf8', cwd: ROOT });

test('--help lists every command and exits 0', () => {
  const r = sluice('--help');
  assert.equal(r.status, 0);
  for (const cmd of ['run', 'check', 'rules', 'stats', 'sa', 'reload', 'trace', 'tap', 'replay', 'decode', 'demo']) assert.match(r.stdout, new RegExp(`^  ${cmd} `, 'm'));
});

test('no command prints usage and exits 2; an unknown one names itself', () => {
  assert.equal(sluice().status, 2);
  const r = sluice('frobnicate');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command "frobnicate"/);
});

test('each command has its own --help', () => {
  for (const cmd of ['run', 'check', 'rules', 'stats', 'sa', 'reload', 'trace', 'tap', 'replay', 'demo']) {
    const r = sluice(cmd, '--help');
    assert.equal(r.status, 0, `${cmd} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`Usage: sluice ${cmd}`));
  }
});

test('check on a broken config exits 2 and names file, line and field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'queues:\n  - num: 1\n    batch: 0\n');
  const r = sluice('check', '-c', file);
  assert.equal(r.status, 2);
  assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:3:\\d+: queues\\[0\\]\\.batch: `));
});

test('check on a missing file says so and exits 2', () => {
  const r = sluice('check', '-c', '/nonexistent/sluice.yaml');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /cannot read/);
});

test('without -c, run, check and rules read $SLUICE_CONFIG (else /etc/sluice/sluice.yaml); a missing default is a usage error', () => {
  const env = (file: string) => ({ ...process.env, SLUICE_CONFIG: file });
  for (const cmd of ['run', 'check', 'rules']) {
    const r = spawnSync(process.execPath, [SLUICE_MAIN, cmd], { encoding: 'utf8', cwd: ROOT, env: env('/nonexistent/sluice.yaml') });
    assert.equal(r.status, 2, cmd);
    assert.match(r.stderr, /no -c FILE given and the default config \/nonexistent\/sluice\.yaml does not exist/, cmd);
  }
  const example = join(ROOT, 'examples', 'minimal-rules.yaml');
  const ok = spawnSync(process.execPath, [SLUICE_MAIN, 'check'], { encoding: 'utf8', cwd: ROOT, env: env(example) });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`^${example.replace(/[.]/g, '\\.')}: ok`));
  // The help says where the default is.
  for (const cmd of ['run', 'check', 'rules']) assert.match(sluice(cmd, '--help').stdout, /Without -c the config is \$SLUICE_CONFIG, else \/etc\/sluice\/sluice\.yaml/);
  assert.match(sluice('--help').stdout, /\/etc\/sluice\/sluice\.yaml +config of run, check and rules/);
});

test('stats without -c or -s asks the socket the default config names', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  const file = join(dir, 'sluice.yaml');
  writeFileSync(file, `control:\n  socket: ${dir}/ctl.sock\n`);
  const r = spawnSync(process.execPath, [SLUICE_MAIN, 'stats'], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, SLUICE_CONFIG: file } });
  assert.equal(r.status, 1);
  assert.ok(r.stderr.includes(`${dir}/ctl.sock`), r.stderr);
});

test('stats without a running sluice explains what is missing', () => {
  const r = sluice('stats', '-s', '/nonexistent/sluice.sock');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /is sluice running\?/);
});

test('every example config passes `sluice check`', () => {
  const examples = readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.yaml'));
  assert.ok(examples.length >= 1);
  for (const f of examples) {
    const r = sluice('check', '-c', join('examples', f));
    assert.equal(r.status, 0, `${f}: ${r.stderr}`);
  }
});

test('run without CAP_NET_ADMIN says what is missing', { skip: process.getuid?.() !== 0 ? 'needs root to drop to nobody' : false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  const file = join(dir, 'q.yaml');
  writeFileSync(file, `queues:\n  - num: 7\nstate_dir: ${join(dir, 'state')}\ncontrol:\n  socket: ${join(dir, 'ctl', 's.sock')}\n`);
  spawnSync('chmod', ['-R', 'a+rwX', dir]);
  const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all',
    process.execPath, SLUICE_MAIN, 'run', '-c', file], { encoding: 'utf8', cwd: ROOT, timeout: 20000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /needs CAP_NET_ADMIN \(run as root\)/);
});

test('check on a FIFO, an alias bomb or a deeply nested file exits 2 at once with a clear error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  const fifo = join(dir, 'fifo.yaml');
  spawnSync('mkfifo', [fifo]);
  const f = spawnSync(process.execPath, [SLUICE_MAIN, 'check', '-c', fifo], { encoding: 'utf8', cwd: ROOT, timeout: 10000 });
  assert.equal(f.status, 2, `FIFO: ${f.stderr}${f.error ? ` (${f.error.message})` : ''}`);
  assert.match(f.stderr, /is a FIFO/);
  const bomb = join(dir, 'bomb.yaml');
  writeFileSync(bomb, ['a: &a [x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
    'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]', 'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]'].join('\n'));
  const b = sluice('check', '-c', bomb);
  assert.equal(b.status, 2, b.stderr);
  assert.match(b.stderr, /aliases expand too much/);
  const deep = join(dir, 'deep.yaml');
  writeFileSync(deep, `queues: ${'['.repeat(10_000)}`);
  const d = sluice('check', '-c', deep);
  assert.equal(d.status, 2, d.stderr);
  assert.match(d.stderr, /nested deeper than 32 levels/);
});

test('check: an undeclared queue is an error; capture addresses, interfaces and metrics.listen are validated; warnings carry file:line; --strict fails on them', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  const write = (name: string, text: string): string => { const f = join(dir, name); writeFileSync(f, text); return f; };
  const nat = write('nat.yaml', 'queues:\n  - num: 1\nnat:\n  public: [203.0.113.1]\n  wan_interface: eth1\n  queue: 5\n');
  const r1 = sluice('check', '-c', nat);
  assert.equal(r1.status, 2, r1.stderr);
  assert.match(r1.stderr, /nat\.yaml:6:\d+: nat\.queue: queue 5 is not declared under queues \(declared: 1\)/);
  const cap = write('cap.yaml', 'queues:\n  - num: 1\n    capture:\n      - chain: forward\n        src: not-an-address\n        in: "-j ACCEPT"\n');
  const r2 = sluice('check', '-c', cap);
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /cap\.yaml:5:\d+: queues\[0\]\.capture\[0\]\.src: an IPv4 address or prefix/);
  assert.match(r2.stderr, /queues\[0\]\.capture\[0\]\.in: an interface name/);
  for (const bad of ['127.0.0.1:70000', '127.0.0.1:0', '::1:9477', 'host']) {
    const f = write('m.yaml', `metrics:\n  listen: "${bad}"\n`);
    assert.equal(sluice('check', '-c', f).status, 2, bad);
  }
  for (const good of ['[::1]:9477', '127.0.0.1:9477', 'localhost:9477']) {
    const f = write('m.yaml', `metrics:\n  listen: "${good}"\n`);
    assert.equal(sluice('check', '-c', f).status, 0, good);
  }
  const warn = write('warn.yaml', 'queues:\n  - num: 1\n    copy_range: 128\n');
  const r3 = sluice('check', '-c', warn);
  assert.equal(r3.status, 0);
  assert.match(r3.stderr, /warn\.yaml:3:\d+: warning: queues: queue 1 copies 128 bytes/);
  const r4 = sluice('check', '--strict', '-c', warn);
  assert.equal(r4.status, 2);
  assert.match(r4.stderr, /--strict: refused/);
});
