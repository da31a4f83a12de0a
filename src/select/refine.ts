/**
 * Config validation by compiling: a section that passes its schema can still name an unknown @set or
 * use a name twice. The compiler throws `list[i] (...): message`; this turns that into a zod issue
 * on path [list, i], so the loader reports it with the file line like any schema error.
 */
import type { z } from 'zod';

export function compiledBy<T>(compile: (cfg: T) => unknown, list: string) {
  const at = new RegExp(`^${list}\\[(\\d+)\\]`);
  return (cfg: unknown, ctx: z.RefinementCtx): void => {
    try {
      compile(cfg as T);
    } catch (e) {
      const m = at.exec((e as Error).message);
      ctx.addIssue({ code: 'custom', path: m ? [list, Number(m[1])] : [], message: (e as Error).message });
    }
  };
}
