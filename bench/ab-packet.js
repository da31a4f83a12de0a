/**
 * Paired A/B of packet-layer hot paths between two builds of the tree (e.g. before and after a
 * restructuring): classify(), the NAT address rewrite, a UDP view's checked wrap + port/address
 * setters. Rounds alternate A and B; the figure is the median of per-round ratios.
 *   git archive REV src tsconfig.json | tar -x -C /tmp/old && (cd /tmp/old && ln -s $PWD/node_modules . && npx tsc -p .)
 *   OLD=/tmp/old/dist/src/ node bench/ab-packet.js
 * The NAT rewrite before 1791b49's successor lived in nat/rewrite.ts (rewriteSource); after, in
 * packet/rewrite.ts (rewriteSrc4).
 */
const path = require('node:path');
const OLD = process.env.OLD, NEW = path.resolve(__dirname, '../dist/src') + '/';
if (!OLD) { console.error('OLD=<path to the other build\'s dist/src/> required'); process.exit(2); }
const load = (root) => ({
  classify: require(root + 'packet/classify'),
  build: require(root + 'packet/build'),
  bytes: require(root + 'packet/bytes'),
  udp: require(root + 'packet/udp'),
  prw: require(root + 'packet/rewrite'),
});
const o = load(OLD), n = load(NEW);
const pk = [];
for (let i = 0; i < 64; i++) {
  const src = o.bytes.ip4(`10.0.${i}.2`), dst = o.bytes.ip4('203.0.113.1');
  pk.push(i % 2 ? o.build.ipv4Esp({ src, dst }, { spi: 0xc0000000 + i, seq: 1, payload: new Uint8Array(100) })
    : o.build.ipv4Udp({ src, dst }, { sport: 4500, dport: 4500, payload: new Uint8Array([0, 0, 0, 1, 2, 3, 4, 5]) }));
}
function runClassify(m, iters) {
  const c = new m.classify.Classified(); let s = 0;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < iters; k++) for (let i = 0; i < pk.length; i++) { m.classify.classify(c, pk[i], 0, pk[i].length); s += c.kind; }
  return Number(process.hrtime.bigint() - t0) / (iters * pk.length);
}
const natOld = require(OLD + 'nat/rewrite');
const cO = pk.map((b) => { const c = new o.classify.Classified(); o.classify.classify(c, b, 0, b.length); return c; });
const cN = pk.map((b) => { const c = new n.classify.Classified(); n.classify.classify(c, b, 0, b.length); return c; });
function runRewriteOld(iters) {
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < iters; k++) for (let i = 0; i < pk.length; i++) { const b = pk[i], c = cO[i]; natOld.rewriteSource(b, c.l3Offset, (0xcb007100 + (k & 1)) >>> 0, c.proto, c.proto === 17 ? c.l4Offset : -1); }
  return Number(process.hrtime.bigint() - t0) / (iters * pk.length);
}
function runRewriteNew(iters) {
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < iters; k++) for (let i = 0; i < pk.length; i++) { const b = pk[i]; n.prw.rewriteSrc4(cN[i], b, (0xcb007100 + (k & 1)) >>> 0); }
  return Number(process.hrtime.bigint() - t0) / (iters * pk.length);
}
function runUdp(m, iters) {
  const v = new m.udp.UdpPacket(); const t0 = process.hrtime.bigint();
  for (let k = 0; k < iters; k++) for (let i = 0; i < pk.length; i += 2) { const b = pk[i]; v.wrapChecked(b, 20, b.length - 20); v.setSrcPort(4500 + (k & 1)); v.adjustForAddress(1, 2 + (k & 1)); }
  return Number(process.hrtime.bigint() - t0) / (iters * pk.length / 2);
}
const med = (a) => { a = [...a].sort((x, y) => x - y); return a[a.length >> 1]; };
const r = { classify: [], rewrite: [], udpView: [] };
for (let round = 0; round < 15; round++) {
  const a1 = runClassify(o, 20000), b1 = runClassify(n, 20000);
  const a2 = runRewriteOld(20000), b2 = runRewriteNew(20000);
  const a3 = runUdp(o, 40000), b3 = runUdp(n, 40000);
  r.classify.push([a1, b1]); r.rewrite.push([a2, b2]); r.udpView.push([a3, b3]);
}
for (const [k, v] of Object.entries(r)) console.log(`${k}: before ${med(v.map((x) => x[0])).toFixed(1)} ns, after ${med(v.map((x) => x[1])).toFixed(1)} ns, after/before median of per-round ratios ${med(v.map((x) => x[1] / x[0])).toFixed(2)}`);
