/**
 * What ships beside the binary for operators: the man page generated from the help texts
 * (scripts/gen-man.js) and the bash completion (packaging/completion/sluice.bash), each driven the
 * way a user meets it: the page rendered by groff, the completion sourced into bash and asked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SLUICE_MAIN } from '../src/lab/sluice';

const ROOT = resolve(__dirname, '../..');
const COMPLETION = join(ROOT, 'packaging/completion/sluice.bash');

const helps = new Map<string, string>();
function help(...args: string[]): string {
  const key = args.join(' ');
  if (!helps.has(key)) helps.set(key, execFileSync(process.execPath, [SLUICE_MAIN, ...args, '--help'], { encoding: 'utf8' }));
  return helps.get(key)!;
}

/** The commands `sluice --help` lists under "Commands:". */
function commands(): string[] {
  const text = help();
  const section = text.slice(text.indexOf('\nCommands:\n') + 1).split('\n\n')[0]!;
  const names = [...section.matchAll(/^ {2}([a-z][a-z-]*)(?= |$)/gm)].map((m) => m[1]!);
  assert.ok(names.length >= 8, `commands parsed from --help: ${names.join(' ')}`);
  return names;
}

let manPage: string | null = null;
/** scripts/gen-man.js run now (npm run build:man writes dist/man/sluice.1 the same way), once per file. */
function generateMan(): string {
  if (manPage) return manPage;
  manPage = join(mkdtempSync(join(tmpdir(), 'sluice-man-')), 'sluice.1');
  execFileSync(process.execPath, [join(ROOT, 'scripts/gen-man.js'), manPage]);
  return manPage;
}

function groffMissing(): string | false {
  try {
    execFileSync('groff', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'groff not installed (Debian package groff-base; scripts/setup.sh installs it)';
  }
}

test('man page: generated from the help texts, one subsection per command, pure ASCII roff', () => {
  const page = readFileSync(generateMan(), 'utf8');
  assert.match(page, /^\.TH SLUICE 1 /m);
  for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'FILES', 'ENVIRONMENT', '"EXIT STATUS"']) {
    assert.match(page, new RegExp(`^\\.SH ${section}$`, 'm'), section);
  }
  for (const cmd of commands()) assert.match(page, new RegExp(`^\\.SS "sluice ${cmd}"$`, 'm'), cmd);
  assert.doesNotMatch(page, /[^\x00-\x7f]/, 'non-ASCII characters are written as groff escapes');
  // Every line a help text has reaches the page: spot-check an option description of each kind.
  assert.match(page, /nftables table \(table inet sluice\)/);
  assert.match(page, /\/var\/lib\/sluice/);
});

test('man page renders with groff without a warning and lists every command', (t) => {
  const missing = groffMissing();
  if (missing) {
    if (process.env.CI === 'true') throw new Error(`man page rendering cannot run under CI: ${missing}`);
    t.skip(missing);
    return;
  }
  const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-rLL=100n', generateMan()], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C.UTF-8' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'groff -ww warns about nothing');
  // Overstrike bold (c\bc) would hide words from a plain match.
  const text = r.stdout.replace(/.\x08/g, '');
  assert.match(text, /^NAME\n +sluice - userspace packet engine/m);
  const listed = text.slice(text.indexOf('\nCOMMANDS\n'), text.indexOf('\nCOMMANDS IN DETAIL\n'));
  for (const cmd of commands()) {
    assert.match(listed, new RegExp(`^ {7}${cmd}\\b`, 'm'), `${cmd} in COMMANDS`);
    assert.match(text, new RegExp(`^ {3}sluice ${cmd}$`, 'm'), `sluice ${cmd} subsection`);
  }
  assert.match(text, /^FILES\n +\/etc\/sluice\/sluice\.yaml/m);
});

/** A directory with `sluice` (a wrapper of the built CLI) for bash to find, and files to complete. */
function completionDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-comp-'));
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'sluice'), `#!/bin/sh\nexec '${process.execPath}' '${SLUICE_MAIN}' "$@"\n`);
  chmodSync(join(dir, 'bin', 'sluice'), 0o755);
  mkdirSync(join(dir, 'work', 'configs'), { recursive: true });
  for (const f of ['gw.yaml', 'lab.yml', 'notes.txt', 'capture.pcap']) writeFileSync(join(dir, 'work', f), '');
  return dir;
}

/**
 * COMPREPLY for each case (the words typed so far, the last one being completed), from one bash
 * with the script sourced, as a shell keeps its cache between completions.
 */
function completeAll(dir: string, cases: string[][]): string[][] {
  // Words are separated by \x1f; each case ends with an END word, so that an empty last word
  // (completing after a space) survives read; replies end with a \x1e line.
  const script = [
    `source '${COMPLETION}'`,
    'while IFS=$\'\\x1f\' read -r -a COMP_WORDS; do',
    '  unset "COMP_WORDS[-1]"',
    '  COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}',
    '  _sluice',
    '  printf "%s\\n" "${COMPREPLY[@]}"; printf "\\x1e\\n"',
    'done',
  ].join('\n');
  const input = cases.map((c) => `${[...c, 'END'].join('\x1f')}\n`).join('');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], {
    encoding: 'utf8', input, cwd: join(dir, 'work'), env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}` },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'no noise on the terminal while completing');
  const out = r.stdout.split('\x1e\n');
  assert.equal(out.length, cases.length + 1, r.stdout);
  return out.slice(0, -1).map((o) => o.split('\n').filter((l) => l !== '').sort());
}

test('bash completion: registered for sluice, completes commands, options per command, files and sa sub-commands', () => {
  const dir = completionDir();
  const p = spawnSync('bash', ['--norc', '--noprofile', '-c', `source '${COMPLETION}' && complete -p sluice`], { encoding: 'utf8' });
  assert.equal(p.stdout.trim(), 'complete -F _sluice sluice');

  const all = commands();
  const expect: [string[], (got: string[]) => void][] = [
    [['sluice', 'r'], (got) => {
      assert.deepEqual(got, all.filter((c) => c.startsWith('r')).sort());
      assert.ok(got.includes('rules'));
    }],
    [['sluice', '--'], (got) => assert.deepEqual(got, ['--help', '--version'])],
    [['sluice', 'rules', '--n'], (got) => assert.deepEqual(got, ['--nft'])],
    // Prose is not an option: rules' help mentions iptables' --noflush, sa's swanctl --list-sas.
    [['sluice', 'rules', '--'], (got) => assert.ok(!got.includes('--noflush'), got.join(' '))],
    [['sluice', 'sa', '--'], (got) => assert.ok(!got.includes('--list-sas') && got.includes('--spi'), got.join(' '))],
    [['sluice', 'stats', '--'], (got) => assert.ok(got.includes('--socket') && got.includes('--config'), got.join(' '))],
    // -c takes a YAML file (or a directory on the way to one); other files are not offered.
    [['sluice', 'check', '-c', ''], (got) => assert.deepEqual(got, ['configs', 'gw.yaml', 'lab.yml'])],
    [['sluice', 'run', '--config', 'g'], (got) => assert.deepEqual(got, ['gw.yaml'])],
    [['sluice', 'rules', '--nft', '-c', 'g'], (got) => assert.deepEqual(got, ['gw.yaml'])],
    // A value that is not a file gets nothing rather than file names.
    [['sluice', 'decode', '--count', ''], (got) => assert.deepEqual(got, [])],
    // decode's argument is a capture file.
    [['sluice', 'decode', 'cap'], (got) => assert.deepEqual(got, ['capture.pcap'])],
    // sa's first word is a sub-command, also after an option and its value; then options.
    [['sluice', 'sa', ''], (got) => assert.deepEqual(got, ['delete', 'flush', 'learning', 'pin', 'unpin'])],
    [['sluice', 'sa', '-s', '/run/x.sock', 'p'], (got) => assert.deepEqual(got, ['pin'])],
    [['sluice', 'sa', 'pin', '--s'], (got) => assert.deepEqual(got, ['--server', '--socket', '--spi'])],
    // An unknown command completes nothing, quietly.
    [['sluice', 'frobnicate', '-'], (got) => assert.deepEqual(got, [])],
  ];
  // Every option a command's usage lines show is offered after `sluice CMD -`.
  for (const cmd of all) {
    const usage = help(cmd).split('\n\n')[0]!;
    const shown = [...usage.matchAll(/(?<=[\s[|])(--?[a-zA-Z][\w-]*)/g)].map((m) => m[1]!);
    assert.ok(shown.length > 0 || cmd === 'decode', `${cmd}: options in its usage`);
    expect.push([['sluice', cmd, '-'], (got) => {
      for (const o of [...shown, '--help']) assert.ok(got.includes(o), `sluice ${cmd} -<TAB> offers ${o} (got ${got.join(' ')})`);
    }]);
  }
  const results = completeAll(dir, expect.map(([words]) => words));
  expect.forEach(([words, check], i) => {
    try {
      check(results[i]!);
    } catch (e) {
      (e as Error).message = `sluice completion of [${words.join(' ')}]: ${(e as Error).message}`;
      throw e;
    }
  });
});
