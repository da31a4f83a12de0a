// NFQUEUE verdict messages (see verdict_sender.h for what is sent when).
#include "verdict_sender.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <sys/socket.h>
#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sluice {
namespace {

constexpr uint32_t VHDR = 48;       // bytes reserved per verdict message header
constexpr size_t MAX_IOV = 1000;    // below IOV_MAX (1024)
constexpr size_t MAX_HDRS = MAX_IOV / 3;  // a message takes up to 3 iovecs (header, payload, pad)
const uint8_t ZEROS[4] = {0, 0, 0, 0};

}  // namespace

void VerdictSender::Init(int fd, uint16_t queue, uint32_t batch, int sndLimit) {
  fd_ = fd;
  queue_ = queue;
  sndLimit_ = sndLimit;
  hdrs_.assign(static_cast<size_t>(VHDR) * MAX_HDRS, 0);
  siov_.reserve(MAX_IOV + 4);
}

// Appends one verdict message (header in hdrs_, payload by reference) to the pending sendmsg.
void VerdictSender::Append(uint16_t type, uint32_t id, uint32_t verdict, int64_t mark, const uint8_t* payload,
                           uint32_t plen) {
  uint32_t len = 32 + (mark >= 0 ? 8 : 0) + (payload ? 4 + MNL_ALIGN(plen) : 0);
  if (nHdrs_ == MAX_HDRS || siov_.size() + 3 > MAX_IOV || (sendBytes_ && sendBytes_ + len > static_cast<size_t>(sndLimit_)))
    Flush();
  uint8_t* h = hdrs_.data() + nHdrs_++ * VHDR;
  uint32_t off = 32;
  auto* nlh = reinterpret_cast<nlmsghdr*>(h);
  nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | type;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = ++seq_;
  nlh->nlmsg_pid = 0;
  auto* g = reinterpret_cast<nfgenmsg*>(h + 16);
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(queue_);
  auto* a = reinterpret_cast<nlattr*>(h + 20);
  a->nla_len = 12;
  a->nla_type = NFQA_VERDICT_HDR;
  nfqnl_msg_verdict_hdr vh{htonl(verdict), htonl(id)};
  memcpy(h + 24, &vh, sizeof vh);
  if (mark >= 0) {
    a = reinterpret_cast<nlattr*>(h + off);
    a->nla_len = 8;
    a->nla_type = NFQA_MARK;
    uint32_t be = htonl(static_cast<uint32_t>(mark));
    memcpy(h + off + 4, &be, 4);
    off += 8;
  }
  uint32_t pad = 0;
  if (payload) {
    a = reinterpret_cast<nlattr*>(h + off);
    a->nla_len = static_cast<uint16_t>(4 + plen);
    a->nla_type = NFQA_PAYLOAD;
    off += 4;
    pad = MNL_ALIGN(plen) - plen;
  }
  nlh->nlmsg_len = off + (payload ? plen + pad : 0);
  siov_.push_back({h, off});
  if (payload) {
    siov_.push_back({const_cast<uint8_t*>(payload), plen});
    if (pad) siov_.push_back({const_cast<uint8_t*>(ZEROS), pad});
  }
  sendBytes_ += nlh->nlmsg_len;
}

void VerdictSender::Flush() {
  if (siov_.empty()) return;
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  msghdr mh{};
  mh.msg_name = &to;
  mh.msg_namelen = sizeof to;
  mh.msg_iov = siov_.data();
  mh.msg_iovlen = siov_.size();
  ssize_t r;
  do r = sendmsg(fd_, &mh, 0); while (r < 0 && errno == EINTR);
  stats_.sendmsgCalls++;
  if (r < 0) { stats_.errors++; stats_.lastErrno = errno; }
  siov_.clear();
  sendBytes_ = 0;
  nHdrs_ = 0;
}

void VerdictSender::SendBatch(const uint8_t* slab, const std::vector<SlotRecord>& records, const std::vector<Out>& out,
                              uint32_t count, const std::vector<uint32_t>& invalid, uint32_t invalidVerdict,
                              const std::vector<uint32_t>& releasedNow) {
  auto released = [&](uint32_t id) { return std::find(releasedNow.begin(), releasedNow.end(), id) != releasedNow.end(); };
  // Held packets first: their ids are owed a verdict, which rules out a VERDICT_BATCH over them.
  for (uint32_t i = 0; i < count; i++)
    if (out[i].verdict == V_HOLD && !released(records[i].id)) held_.insert(records[i].id);
  const bool canBatch = batchAllowed_ && held_.empty();
  // Packets JavaScript never saw: an explicit verdict each, before any VERDICT_BATCH that covers them.
  for (uint32_t id : invalid) {
    stats_.verdicts++;
    Append(NFQNL_MSG_VERDICT, id, invalidVerdict, -1, nullptr, 0);
  }
  uint32_t nAccept = 0, maxAccept = 0;
  for (uint32_t i = 0; i < count; i++) {
    const Out& o = out[i];
    const SlotRecord& r = records[i];
    if (o.verdict == V_HOLD || released(r.id)) continue;
    stats_.verdicts++;
    if (canBatch && o.verdict == V_ACCEPT && !o.hasMark && o.newLength == 0) {
      nAccept++;
      maxAccept = r.id;  // ids grow within a batch
      continue;
    }
    Append(NFQNL_MSG_VERDICT, r.id, o.verdict, o.hasMark ? int64_t{o.mark} : -1,
           o.newLength ? slab + r.offset : nullptr, o.newLength);
  }
  if (nAccept == 1) {
    Append(NFQNL_MSG_VERDICT, maxAccept, V_ACCEPT, -1, nullptr, 0);
  } else if (nAccept > 1) {
    Append(NFQNL_MSG_VERDICT_BATCH, maxAccept, V_ACCEPT, -1, nullptr, 0);
    stats_.batchVerdicts++;
  }
  Flush();
}

void VerdictSender::SendOne(uint32_t id, uint32_t verdict, int64_t mark, const uint8_t* payload, uint32_t plen) {
  Flush();
  stats_.verdicts++;
  Append(NFQNL_MSG_VERDICT, id, verdict, mark, payload, plen);
  Flush();
}

}  // namespace sluice
