// NFQUEUE netlink messages: building the config requests, parsing packet messages (nfqueue_msg.h).
#include "nfqueue_msg.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <algorithm>
#include <cstring>

namespace sluice {

nlmsghdr* BuildConfig(char* buf, uint32_t seq, uint16_t queue, uint8_t cmd, uint32_t copyRange,
                      uint32_t maxLen, uint32_t flags, uint32_t mask) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = seq;
  auto* g = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(queue);
  if (cmd != NFQNL_CFG_CMD_NONE) {
    nfqnl_msg_config_cmd c{cmd, 0, htons(AF_INET)};
    mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof c, &c);
    nfqnl_msg_config_params p{htonl(copyRange), NFQNL_COPY_PACKET};
    mnl_attr_put(nlh, NFQA_CFG_PARAMS, sizeof p, &p);
    mnl_attr_put_u32(nlh, NFQA_CFG_QUEUE_MAXLEN, htonl(maxLen));
  }
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
  return nlh;
}

nlmsghdr* BuildUnbind(char* buf, uint16_t queue) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  auto* g = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(queue);
  nfqnl_msg_config_cmd c{NFQNL_CFG_CMD_UNBIND, 0, htons(AF_INET)};
  mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof c, &c);
  return nlh;
}

bool FindPacketId(const uint8_t* start, int avail, uint32_t* id) {
  if (avail < static_cast<int>(NLMSG_HDRLEN + sizeof(nfgenmsg))) return false;
  auto* nlh = reinterpret_cast<const nlmsghdr*>(start);
  if (nlh->nlmsg_type != MSG_PACKET || nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(nfgenmsg)) return false;
  int end = static_cast<int>(std::min<uint32_t>(nlh->nlmsg_len, static_cast<uint32_t>(avail)));
  int p = NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg));
  while (p + static_cast<int>(sizeof(nlattr)) <= end) {
    auto* a = reinterpret_cast<const nlattr*>(start + p);
    if (a->nla_len < sizeof(nlattr) || p + a->nla_len > end) return false;
    if ((a->nla_type & NLA_TYPE_MASK) == NFQA_PACKET_HDR && a->nla_len >= sizeof(nlattr) + sizeof(nfqnl_msg_packet_hdr)) {
      nfqnl_msg_packet_hdr h;
      memcpy(&h, start + p + sizeof(nlattr), sizeof h);
      *id = ntohl(h.packet_id);
      return true;
    }
    p += MNL_ALIGN(a->nla_len);
  }
  return false;
}

bool ParsePacket(nlmsghdr* nlh, uint32_t* m, SlotRecord* rec, const uint8_t* slab, const uint8_t* slotEnd) {
  bool haveHdr = false, havePayload = false;
  uint32_t inFlags = 0, capLen = 0;
  m[M_MARK] = m[M_INDEV] = m[M_OUTDEV] = m[M_SKB_FLAGS] = 0;
  *rec = SlotRecord{};
  nlattr* attr;
  for (attr = static_cast<nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
       mnl_attr_ok(attr, static_cast<char*>(mnl_nlmsg_get_payload_tail(nlh)) - reinterpret_cast<char*>(attr));
       attr = mnl_attr_next(attr)) {
    uint16_t len = mnl_attr_get_payload_len(attr);
    auto* p = static_cast<uint8_t*>(mnl_attr_get_payload(attr));
    auto be32 = [&]() { uint32_t x; memcpy(&x, p, 4); return ntohl(x); };
    switch (mnl_attr_get_type(attr)) {
      case NFQA_PACKET_HDR:
        if (len >= sizeof(nfqnl_msg_packet_hdr)) {
          auto* h = reinterpret_cast<nfqnl_msg_packet_hdr*>(p);
          rec->id = ntohl(h->packet_id);
          m[M_HW_PROTO] = ntohs(h->hw_protocol);
          m[M_HOOK] = h->hook;
          haveHdr = true;
        }
        break;
      case NFQA_MARK: if (len >= 4) { m[M_MARK] = be32(); inFlags |= IN_HAS_MARK; } break;
      case NFQA_IFINDEX_INDEV: if (len >= 4) m[M_INDEV] = be32(); break;
      case NFQA_IFINDEX_OUTDEV: if (len >= 4) m[M_OUTDEV] = be32(); break;
      case NFQA_SKB_INFO: if (len >= 4) m[M_SKB_FLAGS] = be32(); break;
      case NFQA_CAP_LEN: if (len >= 4) capLen = be32(); break;
      case NFQA_PAYLOAD:
        rec->offset = static_cast<uint32_t>(p - slab);
        rec->length = len;
        rec->capacity = std::min<uint32_t>(MAX_PAYLOAD, static_cast<uint32_t>(slotEnd - p));
        havePayload = len > 0;
        break;
    }
  }
  m[M_ORIG_LENGTH] = capLen > rec->length ? capLen : rec->length;
  if (m[M_ORIG_LENGTH] > rec->length) inFlags |= IN_TRUNCATED;
  m[M_IN_FLAGS] = inFlags;
  return haveHdr && havePayload;
}

}  // namespace sluice
