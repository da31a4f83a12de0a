/**
 * The whole config: the engine's sections plus one optional section per stage area. Unknown keys
 * are errors everywhere (strict objects), so a typo never silently does nothing.
 */
import { z } from 'zod';
import { coreSchemaShape } from './core';

export const configSchema = z.object({
  ...coreSchemaShape,
}).strict();

export type Config = z.infer<typeof configSchema>;
