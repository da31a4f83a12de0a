/**
 * The minimal sluice accept-all consumer for the pps run: NfQueue straight from src/io, no engine.
 * One pass over the batch writing V_ACCEPT (what any engine does at the least), verdicts sent by the
 * addon (one VERDICT_BATCH per batch while nothing is held).
 *   node dist/bench/pps/sluice-raw.js QUEUE [RCVBUF=8388608] [BATCH=64] [MAX_LEN=4096]
 */
import { M_VERDICT, META_STRIDE, V_ACCEPT, type Batch } from '../../src/io/batch-layout';
import { NfQueue } from '../../src/io/nfqueue';

const [queue = '0', rcvbuf = String(8 << 20), batch = '64', maxLen = '4096'] = process.argv.slice(2);
const q = NfQueue.open({ queue: Number(queue), rcvbufBytes: Number(rcvbuf), batchSize: Number(batch), maxLen: Number(maxLen) },
  (b: Batch) => {
    const m = b.meta;
    for (let i = 0, base = M_VERDICT; i < b.count; i++, base += META_STRIDE) m[base] = V_ACCEPT;
  });
process.stdout.write(`ready rcvbuf=${q.rcvbufBytes}\n`);
process.once('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify(q.stats())}\n`);
  q.close();
  process.exit(0);
});
