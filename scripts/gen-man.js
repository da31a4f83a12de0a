#!/usr/bin/env node
'use strict';
/**
 * Writes the man page sluice.1 from the CLI's own help texts (build step: npm run build:man, after
 * build:ts), so the page cannot drift from `--help`: `sluice --help` gives NAME, SYNOPSIS and one
 * section per heading (Commands, Files, ...); every command listed there gets a subsection with its
 * `sluice <command> --help`. Only ENVIRONMENT and EXIT STATUS are written here, as no help text has them.
 *
 * Not help2man: it reads one --help and one --version, so it would leave out every command's own
 * options, and it would be one more system package to build with.
 *
 * Usage: node scripts/gen-man.js OUT   (reads dist/src/cli/main.js)
 */
const { execFileSync } = require('node:child_process');
const { mkdirSync, writeFileSync } = require('node:fs');
const { dirname, resolve } = require('node:path');

const root = resolve(__dirname, '..');
const cli = resolve(root, 'dist/src/cli/main.js');

function help(args) {
  // A fixed environment: the page must not depend on who builds it.
  return execFileSync(process.execPath, [cli, ...args, '--help'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
}

const SPECIAL = { '—': '\\(em', '–': '\\(en', '→': '\\(->', '←': '\\(<-', 'µ': '\\(mc', '…': '...', '×': '\\(mu', '≤': '\\(<=', '≥': '\\(>=' };

/** Text for roff: backslashes and hyphens escaped (\- copies as an ASCII minus), output pure ASCII. */
function esc(text) {
  let s = text.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  s = s.replace(/[^\x20-\x7e]/gu, (c) => SPECIAL[c] ?? `\\[u${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}]`);
  // A line starting with . or ' would be read as a request.
  return /^[.']/.test(s) ? `\\&${s}` : s;
}

const indentOf = (line) => line.length - line.trimStart().length;
/** `  TERM   description`: a term, two or more spaces, its description. */
const ITEM = /^(\s+)(\S(?:.*?\S)?)\s{2,}(\S.*)$/;

/**
 * One help body as roff: plain lines are filled paragraphs, `  term   text` lines (and the deeper
 * indented lines under them) are tagged paragraphs, `  - text` bullets, anything else indented is
 * kept as typed (no fill).
 */
function body(lines) {
  const out = [];
  let mode = 'none'; // 'para' | 'item' | 'pre' | 'none'
  let itemIndent = 0;
  const endPre = () => { if (mode === 'pre') out.push('.fi', '.RE'); };
  for (const line of lines) {
    if (line.trim() === '') {
      endPre();
      mode = 'none';
      continue;
    }
    const ind = indentOf(line);
    if (ind === 0) {
      endPre();
      if (/^[^ ].{0,60}:$/.test(line)) {
        out.push('.PP', `.B ${esc(line.slice(0, -1))}`);
        mode = 'none';
        continue;
      }
      if (mode !== 'para') out.push('.PP');
      out.push(esc(line));
      mode = 'para';
      continue;
    }
    if (mode === 'item' && ind > itemIndent) {
      out.push(esc(line.trim()));
      continue;
    }
    const bullet = /^(\s+)- (.*)$/.exec(line);
    if (bullet) {
      endPre();
      out.push('.IP \\(bu 2', esc(bullet[2]));
      mode = 'item';
      itemIndent = ind;
      continue;
    }
    const item = ITEM.exec(line);
    if (item && !line.trimStart().startsWith('(')) {
      endPre();
      out.push('.TP', `\\fB${esc(item[2])}\\fR`, esc(item[3]));
      mode = 'item';
      itemIndent = ind;
      continue;
    }
    if (mode !== 'pre') { endPre(); out.push('.RS 2', '.nf'); }
    out.push(esc(line.trim()));
    mode = 'pre';
  }
  endPre();
  return out;
}

/** Splits `sluice --help` into its name line, usage, headed sections and the closing notes. */
function parseMain(text) {
  const lines = text.replace(/\n+$/, '').split('\n');
  const [nameLine, ...rest] = lines;
  const sections = [];
  const notes = [];
  let usage = '';
  let current = null;
  for (const line of rest) {
    const u = /^Usage: (.*)$/i.exec(line);
    if (u) { usage = u[1]; continue; }
    if (/^[^ ].*:$/.test(line)) {
      current = { title: line.slice(0, -1), lines: [] };
      sections.push(current);
      continue;
    }
    if (line.trim() === '') { if (current) current.lines.push(line); continue; }
    if (indentOf(line) === 0) { current = null; notes.push(line); continue; }
    if (current) current.lines.push(line);
    else notes.push(line);
  }
  return { nameLine, usage, sections, notes };
}

function commandsOf(section) {
  return section.lines.map((l) => /^\s{1,4}([a-z][a-z-]*)(?=\s|$)/.exec(l)?.[1]).filter(Boolean);
}

function page() {
  const pkg = require(resolve(root, 'package.json'));
  const main = parseMain(help([]));
  const [, name, summary] = /^(\S+)\s+[—-]+\s+(.*)$/u.exec(main.nameLine) ?? [null, 'sluice', main.nameLine];
  const commandSection = main.sections.find((s) => /^commands$/i.test(s.title));
  if (!commandSection) throw new Error('gen-man: sluice --help has no "Commands:" section');
  const commands = commandsOf(commandSection);
  if (commands.length === 0) throw new Error('gen-man: no command found under "Commands:"');

  const out = [
    `.\\" Generated by scripts/gen-man.js from sluice --help and each command's --help; do not edit.`,
    `.TH ${name.toUpperCase()} 1 "" "${name} ${pkg.version}" "User Commands"`,
    // No hyphenation, ragged right: option names and paths must not be split at a line end.
    '.nh',
    '.ad l',
    '.SH NAME',
    `${esc(name)} \\- ${esc(summary)}`,
    '.SH SYNOPSIS',
    `.B ${esc(name)}`,
    esc(main.usage.replace(/^\S+\s*/, '')),
    '.br',
    `.B ${esc(name)}`,
    '\\fIcommand\\fR \\fB\\-\\-help\\fR',
    '.br',
    `.B ${esc(name)}`,
    '\\fB\\-\\-version\\fR',
    '.SH DESCRIPTION',
    `.B ${esc(name)}`,
    `is a ${esc(summary.replace(/^./, (c) => c.toLowerCase()))}.`,
    `Each command below has its own options, shown by \\fB${esc(name)} \\fIcommand\\fB \\-\\-help\\fR.`,
  ];
  for (const s of main.sections) {
    out.push(`.SH ${esc(s.title.toUpperCase())}`, ...body(s.lines));
  }
  out.push('.SH "COMMANDS IN DETAIL"');
  for (const c of commands) {
    const lines = help([c]).replace(/\n+$/, '').split('\n');
    const usageEnd = lines.findIndex((l) => l.trim() === '');
    const usage = usageEnd < 0 ? lines : lines.slice(0, usageEnd);
    // The usage lines as an indented block: `Usage: X` becomes `  X`, so a usage with a description
    // beside it (sluice sa) is a tagged paragraph like the lines under it.
    out.push(`.SS "${esc(`${name} ${c}`)}"`, ...body([usage[0].replace(/^usage:\s*/i, '  '), ...usage.slice(1)]));
    if (usageEnd >= 0) out.push(...body(lines.slice(usageEnd + 1)));
  }
  out.push(
    '.SH ENVIRONMENT',
    '.TP', '.B SLUICE_CONFIG', 'Config file of run, check and rules when \\fB\\-c\\fR is not given (default /etc/sluice/sluice.yaml).',
    '.TP', '.B SLUICE_DEBUG', 'When set, an error exit also prints the stack trace.',
    '.TP', '.B SLUICE_RT_TABLES', 'Where \\fBrules \\-\\-apply\\fR writes routing table names (empty: not written).',
    '.TP', '.BR NOTIFY_SOCKET ", " WATCHDOG_USEC',
    'Set by systemd for \\fBType=notify\\fR units: readiness, reload and watchdog notifications.',
    '.SH "EXIT STATUS"',
    '0 on success, 1 on a runtime failure, 2 on bad usage or an invalid config (a command\'s own',
    'help above may say more).',
  );
  if (main.notes.length > 0) out.push('.SH "SEE ALSO"', ...body(main.notes));
  return `${out.join('\n')}\n`;
}

const target = process.argv[2];
if (!target) {
  process.stderr.write('usage: node scripts/gen-man.js OUT\n');
  process.exit(2);
}
mkdirSync(dirname(resolve(target)), { recursive: true });
writeFileSync(target, page());
