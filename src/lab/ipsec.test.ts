import { test } from 'node:test';
import assert from 'node:assert/strict';
import { charonLogStats, parseListSas } from './ipsec';

// `swanctl --list-sas --raw` from strongSwan 5.9.8 in the lab (one client, kernel-libipsec), shortened.
const RAW = 'list-sa event {c {uniqueid=1 version=2 state=ESTABLISHED local-host=192.168.1.11 local-port=4500 remote-id=server@lab remote-host=203.0.113.10 remote-port=4500 initiator=yes initiator-spi=9e09f69946d35c04 responder-spi=9eb83856c9b30927 local-vips=[10.99.0.1] child-sas {c-1 {name=c uniqueid=1 state=INSTALLED spi-in=8af10c78 spi-out=bce5c45a packets-in=3 packets-out=4 local-ts=[10.99.0.1/32] remote-ts=[10.2.0.0/24]}}}}\nlist-sas reply {}\n';

test('parseListSas reads IKE SPIs, ports, vips and CHILD_SA SPIs from --raw output', () => {
  const [sa, ...rest] = parseListSas(RAW);
  assert.equal(rest.length, 0);
  assert.equal(sa!.spiI, '9e09f69946d35c04');
  assert.equal(sa!.spiR, '9eb83856c9b30927');
  assert.equal(sa!.localPort, 4500);
  assert.equal(sa!.initiator, true);
  assert.equal(sa!.uniqueId, 1);
  assert.equal(sa!.remoteId, 'server@lab');
  assert.equal(sa!.children[0]!.uniqueId, 1);
  assert.deepEqual(sa!.vips, ['10.99.0.1']);
  assert.deepEqual(sa!.children.map((c) => [c.spiIn, c.spiOut, c.packetsIn, c.packetsOut]), [['8af10c78', 'bce5c45a', 3, 4]]);
  assert.deepEqual(sa!.children[0]!.remoteTs, ['10.2.0.0/24']);
  assert.deepEqual(parseListSas('list-sas reply {}\n'), []);
});

// charon 5.9.8 log lines (time_format = %T, time_add_ms = yes) from the 8-client lab run, shortened.
const LOG = `06:00:54.792 07[IKE] initiating IKE_SA c[1] to 203.0.113.10
06:00:54.813 03[ENC] parsed IKE_SA_INIT response 0 [ N(COOKIE) ]
06:00:54.813 03[IKE] initiating IKE_SA c[1] to 203.0.113.10
06:00:55.306 09[IKE] retransmit 1 of request with message ID 0
06:00:55.316 07[IKE] retransmit 2 of request with message ID 0
06:00:55.333 05[IKE] IKE_SA c[1] established between 192.168.1.16[c6@lab]...203.0.113.10[server@lab]
06:00:55.333 05[IKE] CHILD_SA c{1} established with SPIs 2738709d_i d088b5a4_o and TS 10.99.0.8/32 === 10.2.0.0/24
06:00:56.001 05[IKE] CHILD_SA c{2} established with SPIs 1738709d_i 1088b5a4_o and TS 10.99.0.8/32 === 10.2.0.0/24
06:00:57.000 11[NET] ignoring IKE_SA setup from 203.0.113.1, per-IP half-open IKE_SA limit of 5 reached
06:00:58.000 11[IKE] giving up after 3 retransmits
`;

test('charonLogStats: first initiation and establishment times, retransmissions, COOKIEs, ignored IKE_SA_INITs', () => {
  const st = charonLogStats(LOG);
  const at = (h: number, m: number, s: number, ms: number): number => ((h * 60 + m) * 60 + s) * 1000 + ms;
  assert.equal(st.initiated, at(6, 0, 54, 792));
  assert.equal(st.ikeEstablished, at(6, 0, 55, 333));
  assert.equal(st.childEstablished, at(6, 0, 55, 333));
  assert.equal(st.children, 2);
  assert.equal(st.retransmits, 2);
  assert.equal(st.cookiesReceived, 1);
  assert.equal(st.blocked, 1);
  assert.equal(st.gaveUp, 1);
  assert.deepEqual(charonLogStats('no stamps here\n'), { initiated: null, ikeEstablished: null, childEstablished: null, retransmits: 0, gaveUp: 0, children: 0, cookiesReceived: 0, cookiesSent: 0, blocked: 0 });
});
