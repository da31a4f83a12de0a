import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseListSas } from './ipsec';

// `swanctl --list-sas --raw` from strongSwan 5.9.8 in the lab (one client, kernel-libipsec), shortened.
const RAW = 'list-sa event {c {uniqueid=1 version=2 state=ESTABLISHED local-host=192.168.1.11 local-port=4500 remote-host=203.0.113.10 remote-port=4500 initiator=yes initiator-spi=9e09f69946d35c04 responder-spi=9eb83856c9b30927 local-vips=[10.99.0.1] child-sas {c-1 {name=c uniqueid=1 state=INSTALLED spi-in=8af10c78 spi-out=bce5c45a packets-in=3 packets-out=4 local-ts=[10.99.0.1/32] remote-ts=[10.2.0.0/24]}}}}\nlist-sas reply {}\n';

test('parseListSas reads IKE SPIs, ports, vips and CHILD_SA SPIs from --raw output', () => {
  const [sa, ...rest] = parseListSas(RAW);
  assert.equal(rest.length, 0);
  assert.equal(sa!.spiI, '9e09f69946d35c04');
  assert.equal(sa!.spiR, '9eb83856c9b30927');
  assert.equal(sa!.localPort, 4500);
  assert.equal(sa!.initiator, true);
  assert.deepEqual(sa!.vips, ['10.99.0.1']);
  assert.deepEqual(sa!.children.map((c) => [c.spiIn, c.spiOut, c.packetsIn, c.packetsOut]), [['8af10c78', 'bce5c45a', 3, 4]]);
  assert.deepEqual(sa!.children[0]!.remoteTs, ['10.2.0.0/24']);
  assert.deepEqual(parseListSas('list-sas reply {}\n'), []);
});
