// Baseline (3): the npm `nfqueue` package (0.3.2, installed into bench/node_modules by bench/run.sh),
// the way its README uses it: one JavaScript callback and one setVerdict per packet.
//   node bench/pps/npm-nfqueue.js QUEUE
'use strict';
const nfq = require('../node_modules/nfqueue');
const queue = Number(process.argv[2] || 0);
let received = 0;
nfq.createQueueHandler(queue, 65535, (p) => { received++; p.setVerdict(nfq.NF_ACCEPT); });
process.stdout.write('ready\n');
process.once('SIGTERM', () => { process.stdout.write(`received ${received}\n`); process.exit(0); });
