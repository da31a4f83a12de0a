/**
 * loadConfig in a worker thread, for reload: reading, YAML parsing and validating a large config
 * (10,000 rules, 100k-element set files: hundreds of milliseconds) happens off the event loop, so
 * the packet loop keeps receiving and answering batches meanwhile. The result is plain data
 * (structured clone); a ConfigError comes back as one, with the same problems.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ConfigError, loadConfig } from './load';
import type { Config } from './schema';

type Reply = { ok: true; cfg: Config } | { ok: false; problems?: string[]; message: string };

export function loadConfigOffThread(file: string): Promise<Config> {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: { file } });
    let done = false;
    w.once('message', (r: Reply) => {
      done = true;
      if (r.ok) resolve(r.cfg);
      else reject(r.problems ? new ConfigError(r.problems) : new Error(r.message));
    });
    w.once('error', (e) => { done = true; reject(e); });
    w.once('exit', (code) => { if (!done) reject(new Error(`config loader exited with code ${code}`)); });
  });
}

if (!isMainThread && parentPort && (workerData as { file?: unknown })?.file !== undefined) {
  const { file } = workerData as { file: string };
  let reply: Reply;
  try {
    reply = { ok: true, cfg: loadConfig(file) };
  } catch (e) {
    reply = e instanceof ConfigError ? { ok: false, problems: e.problems, message: e.message } : { ok: false, message: (e as Error).message };
  }
  parentPort.postMessage(reply);
}
