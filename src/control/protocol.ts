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

export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string };

/** Requests larger than this are refused: the socket is local but still must not grow memory unbounded. */
export const MAX_REQUEST_BYTES = 1 << 20;
