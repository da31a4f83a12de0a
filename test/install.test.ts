/**
 * The npm package as an operator installs it on a gateway without a compiler: `npm pack`, then
 * `npm install -g --prefix DIR` of the tarball with PATH holding only node, sh and stand-ins for
 * every build tool node-gyp reaches (gcc, g++, cc, c++, make, python3, ...). A stand-in records
 * that it ran and fails, so an install that tries to compile fails here, and the record says so.
 * Then the installed `sluice` runs: --help, --version (loads the prebuilt addon), check on an
 * example config, decode on a lab capture, and the man page is linked.
 *
 * The second test is the control: the same install with npm_config_build_from_source=true must
 * try to compile, and fail, which shows the stand-ins are where node-gyp looks.
 *
 * Dependencies come from the npm cache when it has them (--prefer-offline; `npm ci` fills it),
 * else from the registry, as for the operator.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const PREBUILD = join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'sluice.napi.glibc.node');
const BUILD_TOOLS = ['gcc', 'g++', 'cc', 'c++', 'cpp', 'ld', 'make', 'gmake', 'python3', 'python', 'node-gyp'];

function notBuilt(): string | false {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `the package ships a linux-x64 prebuild; this is ${process.platform}-${process.arch}`;
  for (const f of [PREBUILD, join(ROOT, 'dist/src/cli/main.js'), join(ROOT, 'dist/man/sluice.1')]) {
    if (!existsSync(f)) return `${f} missing: the package is made by npm run build (npm test runs it)`;
  }
  return false;
}

/** npm's own entry script, run with this node: `npm` itself is not on the stripped PATH. */
function npmCli(): string {
  const npm = execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim();
  const cli = join(realpathSync(npm), '..', 'npm-cli.js');
  return existsSync(cli) ? cli : realpathSync(npm);
}

interface Sandbox {
  dir: string;
  /** PATH with node, sh and the recording stand-ins only. */
  path: string;
  /** Where the stand-ins write one line per call. */
  marker: string;
  prefix: string;
}

function sandbox(): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-install-'));
  const bin = join(dir, 'bin');
  const marker = join(dir, 'compiler-calls');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  for (const tool of BUILD_TOOLS) {
    writeFileSync(join(bin, tool), `#!/bin/sh\necho "$0 $*" >> '${marker}'\nexit 1\n`);
    chmodSync(join(bin, tool), 0o755);
  }
  return { dir, path: bin, marker, prefix: join(dir, 'prefix') };
}

/** The environment of this run minus anything that points a build elsewhere, with the stripped PATH. */
function env(sb: Sandbox, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, PATH: sb.path, ...extra };
  for (const k of ['PYTHON', 'CC', 'CXX', 'LINK', 'MAKE', 'npm_config_python', 'npm_config_build_from_source']) if (!(k in extra)) delete e[k];
  return e;
}

let tarball: string | null = null;
/** `npm pack` of this checkout, without its prepack (which rebuilds: the suite runs after npm run build). */
function pack(): string {
  if (tarball) return tarball;
  const out = mkdtempSync(join(tmpdir(), 'sluice-pack-'));
  const r = spawnSync(process.execPath, [npmCli(), 'pack', '--ignore-scripts', '--json', '--pack-destination', out], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [info] = JSON.parse(r.stdout) as { filename: string; files: { path: string }[] }[];
  const files = info!.files.map((f) => f.path);
  for (const f of ['prebuilds/linux-x64/sluice.napi.glibc.node', 'dist/src/cli/main.js', 'dist/man/sluice.1',
    'packaging/completion/sluice.bash', 'packaging/systemd/sluice.service', 'binding.gyp', 'native/addon.cc']) {
    assert.ok(files.includes(f), `the package holds ${f}`);
  }
  assert.ok(!files.some((f) => f.startsWith('build/') || f.startsWith('test/') || f.endsWith('.test.js')), 'no build tree, no tests in the package');
  tarball = join(out, info!.filename);
  return tarball;
}

function install(sb: Sandbox, extra: Record<string, string> = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [npmCli(), 'install', '-g', '--prefix', sb.prefix, pack(),
    '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], { encoding: 'utf8', env: env(sb, extra), timeout: 120_000 });
}

const calls = (sb: Sandbox) => (existsSync(sb.marker) ? readFileSync(sb.marker, 'utf8') : '');

test('npm install -g of the packed tarball works without a compiler: sluice on PATH, prebuilt addon loads', (t) => {
  const why = notBuilt();
  if (why) {
    if (process.env.CI === 'true') throw new Error(`install test cannot run under CI: ${why}`);
    t.skip(why);
    return;
  }
  const sb = sandbox();
  try {
    const r = install(sb);
    assert.equal(calls(sb), '', `the install tried to build the addon:\n${calls(sb)}`);
    assert.equal(r.status, 0, `npm install -g failed:\n${r.stdout}\n${r.stderr}`);
    const pkg = join(sb.prefix, 'lib/node_modules/sluice');
    assert.ok(!existsSync(join(pkg, 'build')), 'nothing was built at install');

    const sluice = join(sb.prefix, 'bin/sluice');
    assert.ok(lstatSync(sluice).isSymbolicLink());
    const run = (...args: string[]) => spawnSync(sluice, args, { encoding: 'utf8', env: env(sb), cwd: sb.dir });

    const help = run('--help');
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Commands:$/m);

    // --version loads the addon: the one command that does without root.
    const version = run('--version');
    assert.equal(version.status, 0, `${version.stdout}${version.stderr}`);
    assert.match(version.stdout, /^sluice \d+\.\d+\.\d+ /);
    assert.match(version.stdout, /^addon: prebuilt, prebuilds\/linux-x64\/sluice\.napi\.glibc\.node, loads$/m);

    const check = run('check', '-c', join(pkg, 'examples/nat.yaml'));
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /nat\.yaml: ok/);

    const decode = run('decode', '--count', '3', join(ROOT, 'test/captures/ike-esp-natt.pcap'));
    assert.equal(decode.status, 0, decode.stderr);
    const lines = decode.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 3);
    assert.match(decode.stdout, /"ike"/);

    // npm links the man page (package.json "man") where man looks under the prefix.
    assert.ok(existsSync(join(sb.prefix, 'share/man/man1/sluice.1')), 'man page linked into PREFIX/share/man/man1');
    assert.equal(calls(sb), '', `running sluice called a build tool:\n${calls(sb)}`);
  } finally {
    rmSync(sb.dir, { recursive: true, force: true });
  }
});

test('control: forced to build from source, the same install reaches a stand-in and fails', (t) => {
  const why = notBuilt();
  if (why) {
    if (process.env.CI === 'true') throw new Error(`install test cannot run under CI: ${why}`);
    t.skip(why);
    return;
  }
  const sb = sandbox();
  try {
    const r = install(sb, { npm_config_build_from_source: 'true' });
    assert.notEqual(r.status, 0, 'a build without a compiler cannot succeed');
    assert.match(calls(sb), /\/(python3?|make|g\+\+|gcc|cc|c\+\+) /, `a build tool stand-in was called (got: ${calls(sb) || 'none'})`);
  } finally {
    rmSync(sb.dir, { recursive: true, force: true });
  }
});
