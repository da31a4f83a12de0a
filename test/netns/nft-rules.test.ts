/**
 * `sluice rules --nft` against the kernel, for every example config, in a fresh namespace each:
 *   - `nft -c -f` (parse, then a check-only transaction in the kernel) accepts every rule but the
 *     `queue` statements, and refuses each of those only with "Could not process rule: No such file
 *     or directory" at the `queue` keyword: this kernel has no nft_queue (CONFIG_NFT_QUEUE unset,
 *     LAB.md). The parser read the whole file first, so a syntax error anywhere (the control below)
 *     shows as such, not as this error.
 *   - the same ruleset with each `queue` statement replaced by `accept` is loaded live (`nft -f`),
 *     listed back with its chains and rules, loaded a second time (the table is replaced, not
 *     doubled), and removed with `--cleanup`'s `nft -f` input.
 * NOT exercised here: a packet actually queued by the nft `queue` statement (the module is
 * missing), so fail-open (`bypass`) and fanout under nft are untested on this machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Lab, labSkipReason, type Namespace } from './lab';
import { SluiceProcess, SLUICE_MAIN } from '../../src/lab/sluice';
import { EXAMPLES } from './steer-helpers';

function nftMissing(): string | false {
  try { execFileSync('nft', ['--version'], { stdio: 'ignore' }); return false; } catch { return 'nft not installed (Debian package nftables; scripts/setup.sh installs it)'; }
}
const skip = labSkipReason() || nftMissing();
if (skip) {
  console.log(`# skipping nft-rules: ${skip}`);
  if (process.env.CI === 'true') throw new Error(`nft-rules cannot run under CI: ${skip}`);
}

const QUEUE_ENOENT = 'Error: Could not process rule: No such file or directory';

/** `FILE:LINE:COL-COL: Error: ...` lines of nft's output, with the text of the line/column named. */
function errors(stderr: string, text: string): { message: string; at: string }[] {
  const lines = text.split('\n');
  const out: { message: string; at: string }[] = [];
  for (const m of stderr.matchAll(/^[^:\n]+:(\d+):(\d+)-\d+: (Error: .*)$/gm)) {
    out.push({ message: m[3]!, at: (lines[Number(m[1]) - 1] ?? '').slice(Number(m[2]) - 1) });
  }
  return out;
}

async function nftFile(ns: Namespace, args: string[], text: string) {
  const file = ns.lab.path(`${ns.name}.${Math.random().toString(36).slice(2)}.nft`);
  writeFileSync(file, text);
  return ns.exec(['nft', ...args, '-f', file], { allowFail: true });
}

test('--nft: the kernel accepts every rule; only the queue statement (no nft_queue here) is refused', { skip, timeout: 120000 }, async (t) => {
  const examples = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));
  assert.ok(examples.length >= 5, examples.join(', '));
  const lab = await Lab.create('nftr');
  t.after(() => lab.cleanup());
  let queueRules = 0, otherRules = 0;
  for (const f of examples) {
    const ns = lab.ns(f.replace(/\W+/g, '').slice(0, 8));
    const text = readFileSync(join(EXAMPLES, f), 'utf8');
    const file = SluiceProcess.write(lab, f, text);
    if (/\bfile:/.test(text)) cpSync(join(EXAMPLES, 'sets'), join(dirname(file), 'sets'), { recursive: true });
    const out = await ns.exec([process.execPath, SLUICE_MAIN, 'rules', '--nft', '-c', file], { allowFail: true });
    assert.equal(out.code, 0, `${f}: ${out.stderr}`);
    const ruleset = out.stdout;
    const rules = ruleset.split('\n').filter((l) => l.includes('meta nfproto ipv4'));
    const queues = rules.filter((l) => / queue (flags \S+ )?to /.test(l));
    queueRules += queues.length;
    otherRules += rules.length - queues.length;

    // Check-only transaction: every error is the missing queue expression, at a queue keyword.
    const checked = await nftFile(ns, ['-c'], ruleset);
    const errs = errors(checked.stderr, ruleset);
    assert.equal(errs.length, queues.length, `${f}: one error per queue rule\n${checked.stderr}`);
    for (const e of errs) {
      assert.equal(e.message, QUEUE_ENOENT, `${f}: ${e.message}`);
      assert.match(e.at, /^queue /, `${f}: error points at ${e.at}`);
    }
    assert.equal(checked.code === 0, queues.length === 0, `${f}: nft -c exit ${checked.code}`);

    // Live: everything but the queue statement, twice (atomic replace), then removed.
    const live = ruleset.replace(/ queue (flags \S+ )?to \S+/g, ' accept');
    for (const round of [1, 2]) {
      const loaded = await nftFile(ns, [], live);
      assert.equal(loaded.code, 0, `${f}: nft -f (round ${round}): ${loaded.stderr}\n${live}`);
    }
    if (rules.length) {
      const listed = (await ns.exec(['nft', 'list', 'table', 'inet', 'sluice'])).stdout;
      const listedRules = listed.split('\n').filter((l) => /comment "sluice: /.test(l));
      assert.equal(listedRules.length, rules.length, `${f}: the kernel holds each rule once\n${listed}`);
      for (const chain of ruleset.matchAll(/chain (\w+) \{\n\s*(type [^\n]*)/g)) {
        assert.ok(listed.includes(`chain ${chain[1]} {`) && listed.includes(chain[2]!.replace(/;\s*$/, ';')), `${f}: ${chain[1]}: ${chain[2]}`);
      }
    }
    const cleanup = await ns.exec([process.execPath, SLUICE_MAIN, 'rules', '--nft', '--cleanup', '-c', file]);
    const removed = await nftFile(ns, [], cleanup.stdout);
    assert.equal(removed.code, 0, removed.stderr);
    assert.doesNotMatch((await ns.exec(['nft', 'list', 'tables'])).stdout, /sluice/, `${f}: table removed`);
  }
  t.diagnostic(`${examples.length} example configs: ${otherRules} rules loaded live, ${queueRules} queue rules checked up to the kernel's missing nft_queue`);
  assert.ok(queueRules > 0 && otherRules > 0);

  // Control: a syntax error is reported as one (the parser reads the whole file before the kernel).
  const ns = lab.ns('control');
  const bad = await nftFile(ns, ['-c'], 'table inet sluice {\n\tchain c {\n\t\ttype filter hook input priority 0;\n\t\tmeta nfproto ipv4 queue flagz bypass to 1\n\t}\n}\n');
  assert.notEqual(bad.code, 0);
  assert.ok(!bad.stderr.includes(QUEUE_ENOENT), bad.stderr);
  assert.match(bad.stderr, /Error: /);
});
