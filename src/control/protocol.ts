/**
 * The control socket speaks JSON lines: one request object per line, one response per line.
 *   → {"cmd":"stats"}            ← {"ok":true,"result":{...}}
 *   → {"cmd":"stage","stage":"nat","name":"sa-list","args":{}}
 *   → {"cmd":"reload"}           ← {"ok":false,"error":"c.yaml:3:5: ..."}
 */
export interface ControlRequest {
  cmd: string;
  stage?: string;
  name?: string;
  args?: Record<string, unknown>;
}

/**
 * stopping: the request could not complete because sluice is stopping (a worker thread died, a
 * signal): not a refusal, and whatever it asked for did not happen. A stop that ends a request
 * under way (a reload, a trace stream) sends this line before closing the connection.
 */
export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string; stopping?: true };

/** A handler's error meaning "sluice is stopping" (answered with `stopping: true`). */
export class StoppingError extends Error {}

/** Requests larger than this are refused: the socket is local but still must not grow memory unbounded. */
export const MAX_REQUEST_BYTES = 1 << 20;
