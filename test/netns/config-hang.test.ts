/**
 * A reload whose config read hangs (a file on a filesystem that never answers a read, as a hung
 * network filesystem does; fixtures/fuse_hang.py speaks FUSE on /dev/fuse): a running sluice refuses
 * the reload after the 5 s read timeout with an error naming the file, answers `sluice stats`
 * meanwhile, keeps its running config, and reloads normally once the path is a regular file again.
 * Also the config worker alone (loadConfigOffThread) with a shorter timeout, and every command
 * that reads a config (`check`, `stats -c`, `sa -c`, `rules`, `replay`: the same bounded reader),
 * and a set file (`address_sets: { x: { file } }`) on the hung filesystem. Everything runs in a
 * private mount and network namespace (unshare), so the mount and the tun device go with it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isRoot } from './lab';

const FUSE = resolve(__dirname, '../../../test/netns/fixtures/fuse_hang.py');

function skipReason(): string | false {
  if (!isRoot()) return 'needs root (mount namespace, FUSE mount, tun device)';
  if (!existsSync('/dev/fuse')) return '/dev/fuse missing (no FUSE in this kernel)';
  for (const t of ['unshare', 'python3']) {
    try { execFileSync(t, ['--version'], { stdio: 'ignore' }); } catch { return `${t} missing`; }
  }
  return false;
}
const skip = skipReason();
if (skip) {
  console.log(`# skipping config-hang: ${skip}`);
  if (process.env.CI === 'true') throw new Error(`config-hang test cannot run under CI: ${skip}`);
}

function underHungFs(dir: string, cmd: string[]): string[] {
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const out = execFileSync('unshare', ['--mount', '--net', '--propagation', 'private', 'python3', FUSE, mnt, ...cmd],
    { encoding: 'utf8', timeout: 60000 });
  return out.trim().split('\n');
}

test('reload from a file whose read hangs: refused after the 5 s timeout, stats answer meanwhile, the running config stays', { skip, timeout: 90000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-hang-'));
  try {
    const lines = underHungFs(dir, [process.execPath, resolve(__dirname, 'config-hang-child.js'), join(dir, 'mnt', 'config.yaml'), dir]);
    type Cli = { code: number; out: string; ms: number };
    const r = JSON.parse(lines[0]!) as { before: Cli; during: Cli; refused: Cli; again: Cli; after: Cli; running: boolean };
    assert.equal(r.before.code, 0, r.before.out);
    assert.match(lines.at(-1)!, /^read-requests [1-9]/, 'the read reached the filesystem and hung there');
    assert.notEqual(r.refused.code, 0, 'the reload is refused');
    assert.match(r.refused.out, /sluice\.yaml: reading took longer than 5000 ms; refused/, r.refused.out);
    assert.ok(r.refused.ms >= 4500 && r.refused.ms < 15000, `refused after ${r.refused.ms} ms`);
    assert.equal(r.during.code, 0, `stats answered while the read hung: ${r.during.out}`);
    assert.ok(r.during.ms < 3000, `stats took ${r.during.ms} ms`);
    assert.ok(r.running, 'sluice kept running');
    assert.equal(r.again.code, 0, `a reload from the regular file works again: ${r.again.out}`);
    assert.equal(r.after.code, 0);
    const stages = (s: Cli): string => JSON.stringify(Object.keys((JSON.parse(s.out) as { stages: object }).stages));
    assert.equal(stages(r.after), stages(r.before), 'the same pipeline');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the config worker alone: a hung read is given up after its timeout, with a ConfigError naming the file', { skip, timeout: 60000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-hang-'));
  try {
    const script = join(dir, 'load.js');
    writeFileSync(script, `
const { loadConfigOffThread } = require(${JSON.stringify(resolve(__dirname, '../../src/config/offthread.js'))});
const { ConfigError } = require(${JSON.stringify(resolve(__dirname, '../../src/config/load.js'))});
const t0 = Date.now();
loadConfigOffThread(process.argv[2], 1500).then(() => { console.log('{"loaded":true}'); },
  (e) => { console.log(JSON.stringify({ ms: Date.now() - t0, config: e instanceof ConfigError, message: e.message })); });
`);
    const lines = underHungFs(dir, [process.execPath, script, join(dir, 'mnt', 'config.yaml')]);
    const r = JSON.parse(lines[0]!) as { ms: number; config: boolean; message: string; loaded?: boolean };
    assert.equal(r.loaded, undefined, 'nothing was loaded');
    assert.equal(r.config, true, 'a ConfigError (exit 2 for the CLI)');
    assert.match(r.message, /mnt\/config\.yaml: reading took longer than 1500 ms; refused/);
    assert.ok(r.ms >= 1400 && r.ms < 6000, `after ${r.ms} ms`);
    assert.match(lines.at(-1)!, /^read-requests [1-9]/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Every command that reads a config, and a set file a config names: each must give up after the 5 s read timeout, not hang. */
const COMMANDS: [string, string[]][] = [
  ['check', ['check', '-c', 'CFG']],
  ['stats', ['stats', '-c', 'CFG']],
  ['sa', ['sa', '-c', 'CFG']],
  ['rules', ['rules', '-c', 'CFG']],
  ['replay', ['replay', '-c', 'CFG', 'CAPTURE']],
  // A regular config whose address set is a file on the hung filesystem.
  ['set-file', ['check', '-c', 'SETCFG']],
];

test('check, stats -c, sa -c, rules, replay, and a set file, on a file whose read hangs: exit 2 after the 5 s read timeout, with the error', { skip, timeout: 60000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-hang-'));
  try {
    const capture = join(dir, 'capture.pcap');
    writeFileSync(capture, Buffer.alloc(24)); // replay reads its capture before the config: any regular file
    const script = join(dir, 'all.sh');
    const cfg = join(dir, 'mnt', 'config.yaml');
    const setCfg = join(dir, 'set.yaml');
    writeFileSync(setCfg, `queues: [{ num: 4 }]\nsteer:\n  address_sets: { nets: { file: ${cfg} } }\n  rules:\n    - { name: a, match: { src: "@nets" }, action: { mark: "0x10/0xff" } }\n`);
    // All at once (one mount, one 5 s wait). A process whose read hangs on FUSE cannot be reaped
    // until the read is answered, and fuse_hang.py answers once the script prints its first line:
    // so each command's time is taken when its error appears, the script prints when every one has
    // given up, and the exit codes are collected after that.
    const run = COMMANDS.map(([name, args]) => {
      const argv = args.map((a) => (a === 'CFG' ? cfg : a === 'SETCFG' ? setCfg : a === 'CAPTURE' ? capture : a)).map((a) => JSON.stringify(a)).join(' ');
      const o = `"$3/${name}`;
      return `( t0=$(date +%s%N); "$1" "$2" ${argv} >${o}.out" 2>&1 & p=$!; `
        + `while [ ! -s ${o}.out" ]; do sleep 0.05; done; echo "gave up after $(( ($(date +%s%N) - t0) / 1000000 )) ms" >${o}.time"; `
        + `wait $p; echo "exit $?" >>${o}.time" ) &`;
    }).join('\n');
    const names = COMMANDS.map(([n]) => n).join(' ');
    writeFileSync(script, `${run}\nfor i in $(seq 300); do n=0; for c in ${names}; do [ -s "$3/$c.time" ] && n=$((n+1)); done; [ $n = ${COMMANDS.length} ] && break; sleep 0.05; done\n`
      + `echo "every command gave up"\nwait\nfor c in ${names}; do echo "== $c"; cat "$3/$c.out" "$3/$c.time"; done\n`);
    const lines = underHungFs(dir, ['sh', script, process.execPath, resolve(__dirname, '../../src/cli/main.js'), dir]);
    assert.match(lines.at(-1)!, /^read-requests [1-9]/, lines.join('\n'));
    for (const [name] of COMMANDS) {
      const from = lines.indexOf(`== ${name}`);
      const out = lines.slice(from + 1, lines.findIndex((l, i) => i > from && l.startsWith('== ')) >>> 0);
      const text = out.join('\n');
      assert.ok(from >= 0, `${name}: no output\n${lines.join('\n')}`);
      assert.match(text, /sluice: .*mnt\/config\.yaml: reading took longer than 5000 ms; refused/, `${name}: ${text}`);
      const t = /^gave up after (\d+) ms$/m.exec(text);
      assert.ok(t, `${name}: ${text}`);
      assert.ok(Number(t[1]) >= 4500 && Number(t[1]) < 15000, `${name}: gave up after ${t[1]} ms`);
      assert.match(text, /^exit 2$/m, `${name}: ${text}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
