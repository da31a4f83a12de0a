/**
 * The NAT stage's learning tests' common ground (src/nat/nat.test.ts, nat-limits.test.ts): one
 * public address, one server, scripted hosts, a stage on fake services, IKE_SA_INIT helpers.
 */
import assert from 'node:assert/strict';
import { natConfigSchema, type NatConfigInput } from '../../src/nat/config';
import { NatStage } from '../../src/nat/stage';
import { Verdict } from '../../src/engine/stage';
import { FakeServices, ip, out, inb, ike, dstOf, srcOf, IKE_SA_INIT } from './nat';

export const PUB = ip('203.0.113.1');
export const PUB2 = ip('203.0.113.2');
export const S = ip('198.51.100.10');
export const hosts = [ip('10.0.0.11'), ip('10.0.0.12'), ip('10.0.0.13'), ip('10.0.0.14')];

export function mk(over: Partial<NatConfigInput> = {}): { st: NatStage; fs: FakeServices } {
  const cfg = natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: null }, ...over });
  const st = new NatStage(cfg);
  const fs = new FakeServices();
  st.init(fs);
  return { st, fs };
}

export const ispiOf = (i: number): bigint => 0x1111000000000000n + BigInt(i);
export const rspiOf = (i: number): bigint => 0x2222000000000000n + BigInt(i);

/** Host i: IKE_SA_INIT out + response in. */
export function initSa(st: NatStage, fs: FakeServices, i: number): void {
  const o = out(st, fs, ike(hosts[i], S, { ispi: ispiOf(i), exchange: IKE_SA_INIT }));
  assert.equal(o.verdict, Verdict.ACCEPT);
  assert.equal(srcOf(o.bytes), PUB);
  const r = inb(st, fs, ike(S, PUB, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_SA_INIT, flags: 0x20 }));
  assert.equal(r.verdict, Verdict.ACCEPT);
  assert.equal(dstOf(r.bytes), hosts[i]);
}

/** 8 hosts with scripted first packets: SPIs 0x1000+i outbound, 0x2000+i inbound. */
export const many = Array.from({ length: 8 }, (_, i) => ip(`10.0.0.${21 + i}`));
export function manyInit(st: NatStage, fs: FakeServices, i: number): void {
  out(st, fs, ike(many[i], S, { ispi: ispiOf(i), exchange: IKE_SA_INIT }));
  inb(st, fs, ike(S, PUB, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_SA_INIT, flags: 0x20 }));
}
