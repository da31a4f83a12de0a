/**
 * Which interface reaches a relay server, when the kernel's own lookup (RTM_GETROUTE through the
 * interface tracker, which honours `ip rule`) is not available (tools, tests without the addon):
 * the main routing table from /proc/net/route (longest prefix, then lowest metric).
 */
import { readFileSync } from 'node:fs';

export type RouteLookup = (dst: number) => string | null;

function le32(hex: string): number {
  const n = parseInt(hex, 16) >>> 0;
  return (((n & 0xff) << 24) | (((n >>> 8) & 0xff) << 16) | (((n >>> 16) & 0xff) << 8) | (n >>> 24)) >>> 0;
}

export function parseProcRoute(text: string): { iface: string; dst: number; mask: number; metric: number }[] {
  const out = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    out.push({ iface: f[0]!, dst: le32(f[1]!), mask: le32(f[7]!), metric: Number(f[6]) });
  }
  return out;
}

export function kernelRouteLookup(file = '/proc/net/route'): RouteLookup {
  return (dst) => {
    let text = '';
    try { text = readFileSync(file, 'utf8'); } catch { return null; }
    let best: { iface: string; mask: number; metric: number } | null = null;
    for (const r of parseProcRoute(text)) {
      if (((dst & r.mask) >>> 0) !== r.dst) continue;
      if (!best || r.mask > best.mask || (r.mask === best.mask && r.metric < best.metric)) best = r;
    }
    return best ? best.iface : null;
  };
}
