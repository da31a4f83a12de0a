// Baseline (3): the npm `nfqueue` package (0.3.2, installed into bench/node_modules by bench/run.sh),
// the way its README uses it: one JavaScript callback and one setVerdict per packet.
//   node bench/pps/npm-nfqueue.js QUEUE [RCVBUF]
// The package's second argument is the netlink receive buffer (nfnl_rcvbufsiz): it gets the same
// RCVBUF as every other consumer. Its queue length cannot be set (no nfq_set_queue_maxlen in the
// package): the kernel default (1024) applies, where the others ask for MAXLEN.
'use strict';
const nfq = require('../node_modules/nfqueue');
const queue = Number(process.argv[2] || 0);
const rcvbuf = Number(process.argv[3] || 65535);
let received = 0;
nfq.createQueueHandler(queue, rcvbuf, (p) => { received++; p.setVerdict(nfq.NF_ACCEPT); });
process.stdout.write('ready\n');
process.once('SIGTERM', () => { process.stdout.write(`received ${received}\n`); process.exit(0); });
