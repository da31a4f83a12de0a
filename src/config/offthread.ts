/**
 * loadConfig in a worker thread, for reload: reading, YAML parsing and validating a large config
 * (10,000 rules, 100k-element set files: hundreds of milliseconds) happens off the event loop, so
 * the packet loop keeps receiving and answering batches meanwhile. The result is plain data
 * (structured clone); a ConfigError comes back as one, with the same problems.
 *
 * The read has the same bounds as `check` and `run` (a regular file only, so a FIFO is refused at
 * once; at most 1 MiB) and a timeout (CONFIG_READ_TIMEOUT_MS: a hung network filesystem): the worker
 * gives up on a read that takes longer, and the caller stops waiting for a worker that has not
 * finished reading by then (plus a margin for the worker's start), terminating it. Either way the
 * reload is refused with a ConfigError naming the file, and the running config stays.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ConfigError, loadConfig } from './load';
import { CONFIG_READ_TIMEOUT_MS } from './bounds';
import type { Config } from './schema';

type Reply = { read: true } | { ok: true; cfg: Config } | { ok: false; problems?: string[]; message: string };

/** Time a worker may take to start, on top of the read timeout, before the caller gives up on it. */
const START_MARGIN_MS = 2000;

export function loadConfigOffThread(file: string, readTimeoutMs = CONFIG_READ_TIMEOUT_MS): Promise<Config> {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: { file, readTimeoutMs } });
    let done = false;
    const finish = (f: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(readTimer);
      f();
      // A read still hanging in the thread pool keeps the worker alive: end it.
      void w.terminate();
    };
    const readTimer = setTimeout(() => finish(() => reject(new ConfigError([
      `${file}: reading took longer than ${readTimeoutMs} ms; refused`]))), readTimeoutMs + START_MARGIN_MS);
    w.on('message', (r: Reply) => {
      if ('read' in r) { clearTimeout(readTimer); return; }
      finish(() => {
        if (r.ok) resolve(r.cfg);
        else reject(r.problems ? new ConfigError(r.problems) : new Error(r.message));
      });
    });
    w.once('error', (e) => finish(() => reject(e)));
    w.once('exit', (code) => finish(() => reject(new Error(`config loader exited with code ${code}`))));
  });
}

if (!isMainThread && parentPort && (workerData as { file?: unknown })?.file !== undefined) {
  const { file, readTimeoutMs } = workerData as { file: string; readTimeoutMs: number };
  const port = parentPort;
  void (async () => {
    let reply: Reply;
    try {
      reply = { ok: true, cfg: await loadConfig(file, { readTimeoutMs, onRead: () => port.postMessage({ read: true }) }) };
    } catch (e) {
      reply = e instanceof ConfigError ? { ok: false, problems: e.problems, message: e.message } : { ok: false, message: (e as Error).message };
    }
    port.postMessage(reply);
  })();
}
