// NFQUEUE netlink messages: the config messages the queue sends (bind with copy range, max length
// and flags; flag probes; unbind) and the packet messages it receives (an id, metadata and the
// payload's place in the slab). Building and parsing only: no socket, no state (nfqueue.cc owns
// the queue's lifecycle). Received bytes are untrusted: every attribute is checked against the
// message and the slot it lies in.
#pragma once
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <cstdint>

#include "batch_source.h"

namespace sluice {

constexpr uint32_t MSG_OVERHEAD = 512;   // netlink + nfqueue attributes in front of the payload
constexpr uint32_t GROW_ROOM = 256;      // extra room after a full-size payload for in-place growth
constexpr uint32_t MAX_PAYLOAD = 65531;  // NFQNL_MAX_COPY_RANGE: nla_len is 16 bits
constexpr uint16_t MSG_PACKET = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
// Room for any config message built here (4-byte aligned by the caller).
constexpr size_t CONFIG_MSG_BYTES = 256;

// One NFQNL_MSG_CONFIG request with an ack (all parts applied atomically by the kernel) into `buf`
// (CONFIG_MSG_BYTES). cmd NFQNL_CFG_CMD_NONE: flags and mask only (a flag probe).
nlmsghdr* BuildConfig(char* buf, uint32_t seq, uint16_t queue, uint8_t cmd, uint32_t copyRange,
                      uint32_t maxLen, uint32_t flags, uint32_t mask);

// The unbind request (no ack asked) into `buf` (CONFIG_MSG_BYTES).
nlmsghdr* BuildUnbind(char* buf, uint16_t queue);

// The packet id of a packet message whose datagram may be cut short (MSG_TRUNC): the attributes are
// walked within the `avail` bytes received. False when there is no readable packet header.
bool FindPacketId(const uint8_t* start, int avail, uint32_t* id);

// Reads one packet message into meta row `m` (the "in" slots) and `rec` (the addon's own copy of
// id, offset in `slab`, length, capacity up to `slotEnd`). False when it carries no packet header
// or no payload.
bool ParsePacket(nlmsghdr* nlh, uint32_t* m, SlotRecord* rec, const uint8_t* slab, const uint8_t* slotEnd);

}  // namespace sluice
