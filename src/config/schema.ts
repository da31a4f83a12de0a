/**
 * The whole config: the engine's sections plus one optional section per stage area. Unknown keys
 * are errors everywhere (strict objects), so a typo never silently does nothing.
 */
import { z } from 'zod';
import { coreSchemaShape } from './core';
import { natConfigSchema } from '../nat/config';

export const configSchema = z.object({
  ...coreSchemaShape,
  nat: natConfigSchema.optional().describe('ESP/IKE NAT keyed by SPI (docs/config.md#nat)'),
}).strict();

export type Config = z.infer<typeof configSchema>;
