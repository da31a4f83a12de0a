/**
 * Writes the sluice config for bench/steer-pps.sh: queue Q with the bench's settings and N steer
 * rules in the style of bench/steer.bench.ts (service ports by source prefix, prefix rules, interface
 * rules, marks), of which only the last matches the bench flow (UDP 10.1.0.2 → 10.2.0.2:9 from a0):
 * every packet goes through the whole prefilter and is then marked and accepted.
 *   node dist/bench/pps/steer-config.js N Q RCVBUF BATCH MAXLEN SOCKET > cfg.yaml
 */
const [n = '100', q = '7', rcvbuf = '8388608', batch = '64', maxlen = '4096', socket = '/tmp/s.sock'] = process.argv.slice(2);
let seed = 7;
const rnd = (k: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % k; };
const ports = [22, 25, 53, 80, 110, 123, 143, 443, 465, 587, 993, 995, 1194, 3306, 3389, 5060, 8080, 8443];
const lines: string[] = [];
for (let i = 0; i < Number(n) - 1; i++) {
  const net = `10.${100 + rnd(100)}.${rnd(250)}.0/24`;
  const k = rnd(5);
  const match = k < 2 ? `{ proto: ${rnd(2) ? 'tcp' : 'udp'}, dport: ${ports[rnd(ports.length)]}, src: ${net} }`
    : k < 3 ? `{ dst: ${net}, not: { dport: 22 } }`
      : k < 4 ? `{ in: "ppp*", src: ${net} }`
        : `{ mark: "0x${(rnd(255) + 1).toString(16)}00/0xff00", proto: tcp }`;
  lines.push(`    - { name: r${i}, match: ${match}, action: { mark: "0x${(i & 0xff).toString(16)}/0xff" } }`);
}
lines.push('    - { name: bench-flow, match: { in: a0, proto: udp, src: 10.1.0.0/24, dst: 10.2.0.0/24, dport: 9 }, action: { mark: "0x1/0xff", then: accept } }');
process.stdout.write(`queues:
  - num: ${q}
    fail_open: false
    max_len: ${maxlen}
    rcvbuf: ${rcvbuf}
    batch: ${batch}
control:
  socket: ${socket}
log:
  level: warn
steer:
  rules:
${lines.join('\n')}
`);
