// The batch layout shared by the addon and TypeScript (src/io/batch-layout.ts mirrors these numbers;
// the binding exports them and src/io/binding.ts refuses to load an addon whose numbers differ).
//
// One batch = one slab (packet bytes, head-room before each) + one Uint32Array `meta` with
// META_STRIDE slots per packet. The addon fills the "in" slots; JavaScript fills the "out" slots.
#pragma once
#include <cstdint>

namespace sluice {

constexpr uint32_t META_STRIDE = 16;

// in: written by the addon for each received packet
constexpr uint32_t M_ID = 0;           // NFQUEUE packet id (host order)
constexpr uint32_t M_OFFSET = 1;       // offset of the packet's first byte in the slab
constexpr uint32_t M_LENGTH = 2;       // bytes present in the slab (captured length)
constexpr uint32_t M_ORIG_LENGTH = 3;  // length on the wire before copy-range truncation
constexpr uint32_t M_MARK = 4;         // skb mark at enqueue time
constexpr uint32_t M_INDEV = 5;        // input ifindex, 0 if none
constexpr uint32_t M_OUTDEV = 6;       // output ifindex, 0 if none
constexpr uint32_t M_HOOK = 7;         // netfilter hook (0 prerouting .. 4 postrouting)
constexpr uint32_t M_HW_PROTO = 8;     // ethertype (host order), e.g. 0x0800
constexpr uint32_t M_SKB_FLAGS = 9;    // NFQA_SKB_* bits: 1 csum-not-ready, 2 gso, 4 csum-not-verified
constexpr uint32_t M_CAPACITY = 10;    // bytes writable from M_OFFSET (for in-place rewrites)
constexpr uint32_t M_IN_FLAGS = 11;    // IN_* bits below
// out: written by JavaScript, read by the addon when it sends the batch's verdicts
constexpr uint32_t M_VERDICT = 12;     // V_* below; NF_QUEUE carries the target queue in bits 16..31
constexpr uint32_t M_VMARK = 13;       // mark to set when OUT_SET_MARK
constexpr uint32_t M_OUT_FLAGS = 14;   // OUT_* bits below
constexpr uint32_t M_NEW_LENGTH = 15;  // payload length to send back when OUT_REWRITTEN

constexpr uint32_t IN_TRUNCATED = 1;   // M_LENGTH < M_ORIG_LENGTH (copy range)
constexpr uint32_t IN_HAS_MARK = 2;

constexpr uint32_t V_DROP = 0;         // NF_DROP
constexpr uint32_t V_ACCEPT = 1;       // NF_ACCEPT
constexpr uint32_t V_QUEUE = 3;        // NF_QUEUE (queue number << 16)
constexpr uint32_t V_REPEAT = 4;       // NF_REPEAT
constexpr uint32_t V_HOLD = 0xff;      // sluice: no verdict now; JavaScript decides later via release()

constexpr uint32_t OUT_SET_MARK = 1;
constexpr uint32_t OUT_REWRITTEN = 2;

}  // namespace sluice
