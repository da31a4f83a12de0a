/**
 * Traffic helpers for lab tests and the demo: a UDP sink that counts (and records) datagrams, and a
 * paced UDP source. Plain python3 sockets, so they run in any namespace without extra packages.
 */
import type { Namespace, Proc } from './lab';

const SINK = `
import socket, signal, sys, json, time
port = int(sys.argv[1]); s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', port))
n = 0; first = []; times = []
def done(*_):
    print(json.dumps({'received': n, 'first': first, 'times': times}), flush=True); sys.exit(0)
signal.signal(signal.SIGTERM, done); print('listening', flush=True)
while True:
    data = s.recv(65535); n += 1
    if len(first) < 20: first.append(data.decode('latin-1')); times.append(time.time() * 1000)
`;

const SOURCE = `
import socket, sys, time
dst, port, count, size, pps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.time()
for i in range(count):
    s.sendto(('%08d' % i).encode().ljust(size, b'.'), (dst, port))
    if pps > 0:
        ahead = (i + 1) / pps - (time.time() - start)
        if ahead > 0: time.sleep(ahead)
`;

export class UdpSink {
  private constructor(readonly proc: Proc) {}

  static async start(ns: Namespace, port: number): Promise<UdpSink> {
    const proc = ns.spawn(['python3', '-c', SINK, String(port)]);
    await proc.waitFor(/listening/);
    return new UdpSink(proc);
  }

  /** Stops the sink and returns what it received. */
  /** Stops the sink; returns the count, the first 20 payloads and their arrival times (ms since the epoch). */
  async finish(): Promise<{ received: number; first: string[]; times: number[] }> {
    await this.proc.stop('SIGTERM', 10000);
    const json = this.proc.stdout.match(/\{"received".*\}/);
    if (!json) throw new Error(`UDP sink ended without its report (exit ${this.proc.exitCode}): ${this.proc.output}`);
    return JSON.parse(json[0]) as { received: number; first: string[]; times: number[] };
  }
}

/** Sends `count` datagrams of `size` bytes at `pps` (0 = as fast as possible); payloads are numbered. */
export async function sendUdp(ns: Namespace, dst: string, port: number, count: number, opts: { size?: number; pps?: number } = {}): Promise<void> {
  await ns.exec(['python3', '-c', SOURCE, dst, String(port), String(count), String(opts.size ?? 64), String(opts.pps ?? 2000)], { timeoutMs: 120000 });
}
