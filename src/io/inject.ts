/**
 * Injector: crafted IPv4 packets out of a chosen interface, for the DHCP responder and relay.
 *   ip(ifindex, packet)          raw IPv4 socket (IP_HDRINCL), bound to the device (SO_BINDTOIFINDEX),
 *                                broadcast allowed; the kernel routes (and resolves the next hop by ARP)
 *                                only through that device, so a reply leaves where it belongs even when
 *                                another interface has the same address.
 *   l2(ifindex, dstMac, packet)  AF_PACKET SOCK_DGRAM, ETH_P_IP to the given MAC: no ARP, for DHCP
 *                                replies to a client that has no address yet.
 * One socket per interface and kind, opened on first use and cached. Failures never throw (a stage
 * calls these from the hot path): they return false and are counted; a socket whose device went away
 * is closed and reopened on the next send.
 */
import { loadBinding, type NativeBinding } from './binding';

export interface InjectorStats {
  sent: number;
  failed: number;
  lastError: string;
}

// errno values after which the cached socket is reopened (device gone or renamed).
const ENXIO = 6;
const ENODEV = 19;
const ENETDOWN = 100;

export class Injector {
  private binding: NativeBinding | null;
  private readonly ipFds = new Map<number, number>();
  private readonly l2Fds = new Map<number, number>();
  private sent = 0;
  private failed = 0;
  private lastError = '';

  /** The addon is loaded on first use, so constructing an Injector never fails. */
  constructor(binding?: NativeBinding) {
    this.binding = binding ?? null;
  }

  ip(ifindex: number, packet: Uint8Array): boolean {
    if (packet.length < 20) return this.fail('packet shorter than an IPv4 header');
    const fd = this.socket(this.ipFds, ifindex, 'ip');
    if (fd < 0) return false;
    const dst = ((packet[16]! << 24) | (packet[17]! << 16) | (packet[18]! << 8) | packet[19]!) >>> 0;
    return this.result(this.binding!.sendIp(fd, packet, dst), this.ipFds, ifindex, 'ip');
  }

  l2(ifindex: number, dstMac: Uint8Array, packet: Uint8Array): boolean {
    if (dstMac.length !== 6) return this.fail('destination MAC must be 6 bytes');
    const fd = this.socket(this.l2Fds, ifindex, 'l2');
    if (fd < 0) return false;
    return this.result(this.binding!.sendL2(fd, ifindex, dstMac, packet), this.l2Fds, ifindex, 'l2');
  }

  stats(): InjectorStats {
    return { sent: this.sent, failed: this.failed, lastError: this.lastError };
  }

  close(): void {
    for (const fds of [this.ipFds, this.l2Fds]) {
      for (const fd of fds.values()) this.binding?.closeFd(fd);
      fds.clear();
    }
  }

  private socket(cache: Map<number, number>, ifindex: number, kind: 'ip' | 'l2'): number {
    const have = cache.get(ifindex);
    if (have !== undefined) return have;
    if (!this.binding) {
      try {
        this.binding = loadBinding();
      } catch (e) {
        this.fail((e as Error).message);
        return -1;
      }
    }
    const fd = kind === 'ip' ? this.binding.openIp(ifindex) : this.binding.openL2(ifindex);
    if (fd < 0) {
      this.fail(`open ${kind} socket on ifindex ${ifindex}: errno ${-fd}`);
      return -1;
    }
    cache.set(ifindex, fd);
    return fd;
  }

  private result(err: number, cache: Map<number, number>, ifindex: number, kind: string): boolean {
    if (err === 0) {
      this.sent++;
      return true;
    }
    if (err === ENXIO || err === ENODEV || err === ENETDOWN) {
      this.binding!.closeFd(cache.get(ifindex)!);
      cache.delete(ifindex);
    }
    return this.fail(`send ${kind} on ifindex ${ifindex}: errno ${err}`);
  }

  private fail(why: string): false {
    this.failed++;
    this.lastError = why;
    return false;
  }
}
