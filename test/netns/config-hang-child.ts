/**
 * Runs inside `unshare --mount --net` under fixtures/fuse_hang.py (config-hang.test.ts): a real
 * `sluice run` (a tun device in this private network namespace as its packet source) whose config
 * path is a symlink; the link is turned to a file on a filesystem whose reads never return, and
 * `sluice reload` is asked for. Prints one JSON line of findings for the parent test to judge, then
 * stops sluice (after the line: the hung read is released once it is printed).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SLUICE_MAIN } from '../../src/lab/sluice';

const [hungFile, dir] = process.argv.slice(2) as [string, string];
const sock = join(dir, 'control.sock');
const cfg = join(dir, 'sluice.yaml');
const real = join(dir, 'real.yaml');
writeFileSync(real, `tun:\n  - name: slh${process.pid % 100000}\ncontrol:\n  socket: ${sock}\nstate_dir: ${join(dir, 'state')}\n`);
symlinkSync(real, cfg);
const point = (target: string): void => { symlinkSync(target, `${cfg}.new`); renameSync(`${cfg}.new`, cfg); };

function cli(...args: string[]): Promise<{ code: number; out: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [SLUICE_MAIN, ...args], { timeout: 30000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr, ms: Date.now() - t0 });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const log = openSync(join(dir, 'sluice.log'), 'w');
  const run = spawn(process.execPath, [SLUICE_MAIN, 'run', '-c', cfg], { stdio: ['ignore', log, log] });
  const exited = new Promise<number | null>((r) => run.on('exit', (code) => r(code)));
  for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(100);
  const before = await cli('stats', '-s', sock, '--json');
  point(hungFile);
  const reload = cli('reload', '-s', sock);
  await sleep(1500);
  const during = await cli('stats', '-s', sock, '--json'); // the engine answers while the read hangs
  const refused = await reload;
  point(real);
  const again = await cli('reload', '-s', sock);
  const after = await cli('stats', '-s', sock, '--json');
  console.log(JSON.stringify({ before, during, refused, again, after, running: run.exitCode === null }));
  await sleep(500);
  run.kill('SIGTERM');
  const code = await exited;
  console.log(JSON.stringify({ exit: code, log: readFileSync(join(dir, 'sluice.log'), 'utf8').slice(-2000) }));
}

void main();
