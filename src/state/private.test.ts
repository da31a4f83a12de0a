import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPrivate, privateDir, UnsafePathError } from './private';

const dir = () => mkdtempSync(join(tmpdir(), 'sluice-private-'));

test('privateDir creates a missing directory 0700 and refuses symlinks, files and group/other-writable ones', () => {
  const d = dir();
  privateDir(join(d, 'new', 'state'));
  const shared = join(d, 'shared');
  privateDir(shared);
  chmodSync(shared, 0o775);
  assert.throws(() => privateDir(shared), (e: unknown) => e instanceof UnsafePathError && /writable by its group.*chmod go-w/.test(e.message));
  chmodSync(shared, 0o700);
  symlinkSync(shared, join(d, 'link'));
  assert.throws(() => privateDir(join(d, 'link')), /is a symlink/);
  writeFileSync(join(d, 'file'), '');
  assert.throws(() => privateDir(join(d, 'file')), /not a directory/);
});

test('openPrivate never follows a symlink; a temporary replaces whatever sits at its name', () => {
  const d = dir();
  const target = join(d, 'precious');
  writeFileSync(target, 'keep me\n');
  symlinkSync(target, join(d, 'journal'));
  assert.throws(() => openPrivate(join(d, 'journal'), 'a'), /is a symlink/);
  symlinkSync(target, join(d, 'journal.tmp'));
  const fd = openPrivate(join(d, 'journal.tmp'), 'w', { temp: true });
  writeSync(fd, 'fresh\n');
  closeSync(fd);
  assert.equal(readFileSync(target, 'utf8'), 'keep me\n', 'the symlink target is untouched');
  assert.equal(readFileSync(join(d, 'journal.tmp'), 'utf8'), 'fresh\n');
});
