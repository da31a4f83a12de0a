// NFQUEUE source. Flow through this file:
//   1. open: netlink socket, receive buffer, one config message (bind + copy range + max length + flags)
//   2. uv_poll readable → recvmmsg up to `batch` datagrams into one slab (one slot per datagram)
//   3. parse each packet message's attributes, write its metadata into `meta` (batch_layout.h)
//   4. call JavaScript once with the count; JavaScript writes each packet's verdict into `meta`
//   5. send the batch's verdicts: individual messages (drop/mark/rewrite/queue/repeat) first, then one
//      VERDICT_BATCH for the plain accepts, all in as few sendmsg calls as the socket takes
//   6. repeat while the socket delivers full batches, at most `maxRounds` times per wake-up
// Mechanical only: every decision comes from JavaScript (or the configured default verdict when the
// handler threw before writing one).
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <unordered_set>
#include <vector>

#include "batch_layout.h"
#include "common.h"

namespace sluice {
namespace {

constexpr uint32_t HEADROOM = 64;        // before each slot's datagram; keeps slots 64-byte aligned
constexpr uint32_t MSG_OVERHEAD = 512;   // netlink + nfqueue attributes in front of the payload
constexpr uint32_t GROW_ROOM = 256;      // extra room after a full-size payload for in-place growth
constexpr uint32_t MAX_PAYLOAD = 65531;  // NFQNL_MAX_COPY_RANGE: nla_len is 16 bits
constexpr uint32_t VHDR = 48;            // bytes reserved per verdict message header
constexpr size_t MAX_IOV = 1000;         // below IOV_MAX (1024)
constexpr uint16_t MSG_PACKET = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
const uint8_t ZEROS[4] = {0, 0, 0, 0};

struct Counters {
  double received = 0, batches = 0, verdicts = 0, sendmsgCalls = 0, batchVerdicts = 0, errors = 0,
         enobufs = 0, truncated = 0, repeatedEarly = 0, lastErrno = 0;
};

// Is queue `num` listed in /proc/net/netfilter/nfnetlink_queue (i.e. bound by some socket)?
bool QueueListed(uint16_t num) {
  FILE* f = fopen("/proc/net/netfilter/nfnetlink_queue", "r");
  if (!f) return false;
  unsigned q;
  char line[256];
  bool found = false;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "%u", &q) == 1 && q == num) found = true;
  fclose(f);
  return found;
}

class NfQueue : public Napi::ObjectWrap<NfQueue> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NfQueue", {
      InstanceMethod<&NfQueue::Release>("release"),
      InstanceMethod<&NfQueue::Stats>("stats"),
      InstanceMethod<&NfQueue::Close>("close"),
    });
  }

  NfQueue(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NfQueue>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "NfQueue(options, onBatch)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    queue_ = static_cast<uint16_t>(NumOpt(o, "queue", 0));
    uint32_t copyRange = std::min<uint32_t>(MAX_PAYLOAD, static_cast<uint32_t>(NumOpt(o, "copyRange", MAX_PAYLOAD)));
    if (copyRange == 0) copyRange = MAX_PAYLOAD;
    uint32_t maxLen = static_cast<uint32_t>(NumOpt(o, "maxLen", 1024));
    batch_ = std::clamp<uint32_t>(static_cast<uint32_t>(NumOpt(o, "batchSize", 64)), 1, 1024);
    maxRounds_ = std::max<uint32_t>(1, static_cast<uint32_t>(NumOpt(o, "maxRounds", 16)));
    defaultVerdict_ = static_cast<uint32_t>(NumOpt(o, "defaultVerdict", V_ACCEPT));
    uint32_t flags = (BoolOpt(o, "failOpen", false) ? NFQA_CFG_F_FAIL_OPEN : 0) |
                     (BoolOpt(o, "gso", false) ? NFQA_CFG_F_GSO : 0) |
                     (BoolOpt(o, "conntrack", false) ? NFQA_CFG_F_CONNTRACK : 0);
    double rcvbuf = NumOpt(o, "rcvbufBytes", 4 << 20);

    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd_ < 0) { ErrnoError(env, "NFQUEUE: netlink socket", errno).ThrowAsJavaScriptException(); return; }
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    socklen_t sl = sizeof sa;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &sl) < 0)
      { Fail(env, "NFQUEUE: netlink bind", errno); return; }
    portid_ = sa.nl_pid;

    // SO_RCVBUFFORCE ignores rmem_max (root); SO_RCVBUF is capped by it. Report what the kernel took.
    if (rcvbuf > 0) {
      int want = static_cast<int>(std::min(rcvbuf, 1.0 * (1 << 30)));
      if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) < 0)
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    }
    int big = 4 << 20;
    if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0)
      setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    int v = 0;
    sl = sizeof v;
    getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &v, &sl);
    rcvbufEffective_ = v;
    sl = sizeof v;
    getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &v, &sl);
    sndLimit_ = std::max(4096, v - 1024);
    // Without NETLINK_NO_ENOBUFS an overflow makes the next recv fail with ENOBUFS; the kernel's
    // per-queue counters (user_dropped) still record the loss.
    int one = 1;
    if (BoolOpt(o, "noEnobufs", true)) setsockopt(fd_, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

    // The slab: one slot per datagram of a batch; the datagram starts HEADROOM bytes into its slot.
    slotSize_ = (HEADROOM + MSG_OVERHEAD + copyRange + GROW_ROOM + 63) & ~63u;
    Napi::ArrayBuffer slabBuf = Napi::ArrayBuffer::New(env, static_cast<size_t>(slotSize_) * batch_);
    Napi::ArrayBuffer metaBuf = Napi::ArrayBuffer::New(env, static_cast<size_t>(META_STRIDE) * 4 * batch_);
    slab_ = static_cast<uint8_t*>(slabBuf.Data());
    meta_ = static_cast<uint32_t*>(metaBuf.Data());
    slabRef_ = Napi::Persistent(slabBuf);
    metaRef_ = Napi::Persistent(metaBuf);
    msgs_.resize(batch_);
    riov_.resize(batch_);
    for (uint32_t i = 0; i < batch_; i++) {
      riov_[i] = {slab_ + static_cast<size_t>(i) * slotSize_ + HEADROOM, slotSize_ - HEADROOM};
      msgs_[i].msg_hdr = {};
      msgs_[i].msg_hdr.msg_iov = &riov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    hdrs_.resize(static_cast<size_t>(VHDR) * (batch_ + 1));
    siov_.reserve(MAX_IOV + 4);

    int err = Configure(NFQNL_CFG_CMD_BIND, copyRange, maxLen, flags, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO | NFQA_CFG_F_CONNTRACK);
    if (err == EAGAIN) err = Configure(NFQNL_CFG_CMD_BIND, copyRange, maxLen, flags, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO | NFQA_CFG_F_CONNTRACK);
    if (err) { FailConfig(env, err, flags); return; }

    Napi::Object self = Value();
    self.Set("slab", Napi::Uint8Array::New(env, slabBuf.ByteLength(), slabBuf, 0));
    self.Set("meta", Napi::Uint32Array::New(env, META_STRIDE * batch_, metaBuf, 0));
    self.Set("rcvbufBytes", Napi::Number::New(env, rcvbufEffective_));
    self.Set("slotSize", Napi::Number::New(env, slotSize_));
    self.Set("batchSize", Napi::Number::New(env, batch_));
    self.Set("copyRange", Napi::Number::New(env, copyRange));
    cb_ = Napi::Persistent(info[1].As<Napi::Function>());
    actx_ = new Napi::AsyncContext(env, "sluice:nfqueue");
    if (!poller_.Start(env, fd_, this, &NfQueue::OnPoll)) { Fail(env, "NFQUEUE: uv_poll_init", EINVAL); return; }
    Ref();  // the poll handle points at us: stay alive until close()
  }

  ~NfQueue() override {
    poller_.Stop();
    if (fd_ >= 0) close(fd_);
    delete actx_;
  }

 private:
  void Fail(Napi::Env env, const char* what, int err) {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    ErrnoError(env, what, err).ThrowAsJavaScriptException();
  }

  // Errors that say what to do. The kernel answers EPERM both for a missing CAP_NET_ADMIN and for a
  // queue bound by another socket; the per-namespace /proc listing tells them apart.
  void FailConfig(Napi::Env env, int err, uint32_t flags) {
    std::string q = "queue " + std::to_string(queue_);
    std::string msg;
    if (err == EBUSY || err == EEXIST || (err == EPERM && QueueListed(queue_))) {
      msg = "NFQUEUE " + q + " is already bound by another process";
    } else if (err == EPERM) {
      msg = "NFQUEUE " + q + ": needs CAP_NET_ADMIN (run as root)";
    } else if (err == EOPNOTSUPP) {
      // Flags are validated before the bind, so probing one flag at a time on the unbound queue gives
      // EOPNOTSUPP for the refused flag and ENODEV for an accepted one.
      std::string names;
      const std::pair<uint32_t, const char*> all[] = {
          {NFQA_CFG_F_FAIL_OPEN, "FAIL_OPEN"}, {NFQA_CFG_F_GSO, "GSO"}, {NFQA_CFG_F_CONNTRACK, "CONNTRACK"}};
      for (auto& [bit, name] : all)
        if ((flags & bit) && Configure(NFQNL_CFG_CMD_NONE, 0, 0, bit, bit) == EOPNOTSUPP) names += names.empty() ? name : std::string(", ") + name;
      msg = "NFQUEUE " + q + ": the kernel refuses flag " + (names.empty() ? "(unknown)" : names) +
            " (EOPNOTSUPP); remove it from the queue options";
    } else {
      msg = "NFQUEUE " + q + ": configuration failed";
      Fail(env, msg.c_str(), err);
      return;
    }
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    Napi::Error e = Napi::Error::New(env, msg);
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
  }

  // One NFQNL_MSG_CONFIG message (all parts applied atomically by the kernel), acked. Returns errno.
  int Configure(uint8_t cmd, uint32_t copyRange, uint32_t maxLen, uint32_t flags, uint32_t mask) {
    alignas(4) char buf[256];
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = ++seq_;
    auto* g = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(queue_);
    if (cmd != NFQNL_CFG_CMD_NONE) {
      nfqnl_msg_config_cmd c{cmd, 0, htons(AF_INET)};
      mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof c, &c);
      nfqnl_msg_config_params p{htonl(copyRange), NFQNL_COPY_PACKET};
      mnl_attr_put(nlh, NFQA_CFG_PARAMS, sizeof p, &p);
      mnl_attr_put_u32(nlh, NFQA_CFG_QUEUE_MAXLEN, htonl(maxLen));
    }
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
    if (SendRaw(nlh, nlh->nlmsg_len) < 0) return errno;
    return WaitAck(seq_);
  }

  ssize_t SendRaw(const void* p, size_t len) {
    sockaddr_nl to{};
    to.nl_family = AF_NETLINK;
    return sendto(fd_, p, len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }

  // Reads until the ack for `seq`. A packet that slips in between the bind and the ack (before the
  // handler exists) gets NF_REPEAT: it re-enters the hook and is queued again, through the normal path.
  int WaitAck(uint32_t seq) {
    alignas(4) static uint8_t buf[MSG_OVERHEAD + MAX_PAYLOAD + GROW_ROOM];
    for (int tries = 0; tries < 64; tries++) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 2000) <= 0) return ETIMEDOUT;
      int n = static_cast<int>(recv(fd_, buf, sizeof buf, 0));
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS) continue;
        return errno;
      }
      for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf); mnl_nlmsg_ok(nlh, n); nlh = mnl_nlmsg_next(nlh, &n)) {
        if (nlh->nlmsg_type == NLMSG_ERROR && nlh->nlmsg_seq == seq)
          return -static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
        if (nlh->nlmsg_type == MSG_PACKET) {
          uint32_t m[META_STRIDE];
          if (Parse(nlh, m, buf + sizeof buf)) {
            SendOne(m[M_ID], V_REPEAT, -1, nullptr, 0);
            counters_.repeatedEarly++;
          }
        }
      }
    }
    return ETIMEDOUT;
  }

  // Fills one packet's "in" slots; false for a message without a packet header.
  bool Parse(nlmsghdr* nlh, uint32_t* m, const uint8_t* slotEnd) {
    bool haveHdr = false;
    uint32_t inFlags = 0, capLen = 0;
    m[M_MARK] = m[M_INDEV] = m[M_OUTDEV] = m[M_SKB_FLAGS] = m[M_LENGTH] = m[M_CAPACITY] = 0;
    m[M_OFFSET] = static_cast<uint32_t>(reinterpret_cast<uint8_t*>(nlh) - slab_);
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
            m[M_ID] = ntohl(h->packet_id);
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
          m[M_OFFSET] = static_cast<uint32_t>(p - slab_);
          m[M_LENGTH] = len;
          m[M_CAPACITY] = std::min<uint32_t>(MAX_PAYLOAD, static_cast<uint32_t>(slotEnd - p));
          break;
      }
    }
    m[M_ORIG_LENGTH] = capLen > m[M_LENGTH] ? capLen : m[M_LENGTH];
    if (m[M_ORIG_LENGTH] > m[M_LENGTH]) inFlags |= IN_TRUNCATED;
    m[M_IN_FLAGS] = inFlags;
    return haveHdr;
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<NfQueue*>(h->data);
    if (self && status == 0) self->Drain();
  }

  void Drain() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);  // a libuv callback: no JavaScript scope is open
    for (uint32_t round = 0; round < maxRounds_ && fd_ >= 0; round++) {
      int n = recvmmsg(fd_, msgs_.data(), batch_, MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) { counters_.enobufs++; continue; }
        if (errno != EAGAIN) { counters_.errors++; counters_.lastErrno = errno; }
        return;
      }
      uint32_t count = 0;
      for (int i = 0; i < n; i++) {
        if (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) { counters_.truncated++; continue; }
        uint8_t* start = static_cast<uint8_t*>(riov_[i].iov_base);
        const uint8_t* slotEnd = start - HEADROOM + slotSize_;
        int left = static_cast<int>(msgs_[i].msg_len);
        for (auto* nlh = reinterpret_cast<nlmsghdr*>(start); mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
          if (nlh->nlmsg_type == NLMSG_ERROR) {
            auto* e = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
            if (e->error) { counters_.errors++; counters_.lastErrno = -e->error; }
          } else if (nlh->nlmsg_type == MSG_PACKET && count < batch_) {
            // The kernel sends one packet per datagram, so `count < batch_` always holds.
            uint32_t* m = meta_ + count * META_STRIDE;
            if (!Parse(nlh, m, slotEnd)) { counters_.errors++; continue; }
            m[M_VERDICT] = defaultVerdict_;
            m[M_VMARK] = 0;
            m[M_OUT_FLAGS] = 0;
            m[M_NEW_LENGTH] = m[M_LENGTH];
            count++;
          }
        }
      }
      if (count) {
        counters_.received += count;
        counters_.batches++;
        inBatch_ = true;
        releasedInBatch_.clear();
        CallBatch(env, cb_, *actx_, Value(), count);
        inBatch_ = false;
        SendVerdicts(count);
        if (closePending_) { DoClose(); return; }
      }
      if (static_cast<uint32_t>(n) < batch_) return;
    }
  }

  // Appends one verdict message (header in hdrs_, payload by reference) to the send list.
  void Append(uint8_t* h, uint16_t type, uint32_t id, uint32_t verdict, int64_t mark, const uint8_t* payload, uint32_t plen) {
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
    if (siov_.size() + 3 > MAX_IOV || (sendBytes_ && sendBytes_ + nlh->nlmsg_len > static_cast<size_t>(sndLimit_))) Flush();
    siov_.push_back({h, off});
    if (payload) {
      siov_.push_back({const_cast<uint8_t*>(payload), plen});
      if (pad) siov_.push_back({const_cast<uint8_t*>(ZEROS), pad});
    }
    sendBytes_ += nlh->nlmsg_len;
  }

  void Flush() {
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
    counters_.sendmsgCalls++;
    if (r < 0) { counters_.errors++; counters_.lastErrno = errno; }
    siov_.clear();
    sendBytes_ = 0;
  }

  void SendVerdicts(uint32_t count) {
    // Held packets first: a VERDICT_BATCH covers every queued id up to its id, so it is only safe
    // while nothing is held (held ids are always lower than this batch's ids).
    for (uint32_t i = 0; i < count; i++) {
      const uint32_t* m = meta_ + i * META_STRIDE;
      if (m[M_VERDICT] == V_HOLD &&
          std::find(releasedInBatch_.begin(), releasedInBatch_.end(), m[M_ID]) == releasedInBatch_.end())
        held_.insert(m[M_ID]);
    }
    const bool canBatch = held_.empty();
    uint32_t nAccept = 0, maxAccept = 0;
    uint8_t* h = hdrs_.data();
    for (uint32_t i = 0; i < count; i++) {
      const uint32_t* m = meta_ + i * META_STRIDE;
      const uint32_t v = m[M_VERDICT], f = m[M_OUT_FLAGS], id = m[M_ID];
      if (v == V_HOLD) continue;
      counters_.verdicts++;
      if (canBatch && v == V_ACCEPT && !(f & (OUT_SET_MARK | OUT_REWRITTEN))) {
        nAccept++;
        maxAccept = id;  // ids grow within a batch
        continue;
      }
      const uint8_t* payload = nullptr;
      uint32_t plen = 0;
      if (f & OUT_REWRITTEN) {
        if (m[M_NEW_LENGTH] <= m[M_CAPACITY]) { payload = slab_ + m[M_OFFSET]; plen = m[M_NEW_LENGTH]; }
        else { counters_.errors++; counters_.lastErrno = EMSGSIZE; }  // sent unchanged
      }
      Append(h, NFQNL_MSG_VERDICT, id, v, (f & OUT_SET_MARK) ? int64_t{m[M_VMARK]} : -1, payload, plen);
      h += VHDR;
    }
    if (nAccept == 1) {
      Append(h, NFQNL_MSG_VERDICT, maxAccept, V_ACCEPT, -1, nullptr, 0);
    } else if (nAccept > 1) {
      Append(h, NFQNL_MSG_VERDICT_BATCH, maxAccept, V_ACCEPT, -1, nullptr, 0);
      counters_.batchVerdicts++;
    }
    Flush();
  }

  void SendOne(uint32_t id, uint32_t verdict, int64_t mark, const uint8_t* payload, uint32_t plen) {
    alignas(4) uint8_t h[VHDR];
    std::vector<iovec> saved;
    saved.swap(siov_);
    size_t savedBytes = sendBytes_;
    sendBytes_ = 0;
    Append(h, NFQNL_MSG_VERDICT, id, verdict, mark, payload, plen);
    Flush();
    siov_.swap(saved);
    sendBytes_ = savedBytes;
  }

  // release(id, verdict, mark (-1 keeps it), payload?: Uint8Array | null): one verdict now.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) return Napi::Boolean::New(env, false);
    uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    uint32_t verdict = info[1].As<Napi::Number>().Uint32Value();
    int64_t mark = info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : -1;
    const uint8_t* payload = nullptr;
    uint32_t plen = 0;
    if (info[3].IsTypedArray()) {
      Napi::Uint8Array u = info[3].As<Napi::Uint8Array>();
      payload = u.Data();
      plen = static_cast<uint32_t>(std::min<size_t>(u.ByteLength(), MAX_PAYLOAD));
    }
    held_.erase(id);
    if (inBatch_) releasedInBatch_.push_back(id);
    counters_.verdicts++;
    SendOne(id, verdict, mark < 0 ? -1 : (mark & 0xffffffff), payload, plen);
    return Napi::Boolean::New(env, true);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    const Counters& c = counters_;
    o.Set("received", c.received);
    o.Set("batches", c.batches);
    o.Set("verdicts", c.verdicts);
    o.Set("sendmsgCalls", c.sendmsgCalls);
    o.Set("batchVerdicts", c.batchVerdicts);
    o.Set("errors", c.errors);
    o.Set("enobufs", c.enobufs);
    o.Set("heldOutstanding", static_cast<double>(held_.size()));
    o.Set("truncated", c.truncated);
    o.Set("repeatedEarly", c.repeatedEarly);
    o.Set("lastErrno", c.lastErrno);
    return o;
  }

  // Unbinds and closes. Inside the batch handler the close waits until the batch's verdicts are sent.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (inBatch_) closePending_ = true;
    else DoClose();
    return info.Env().Undefined();
  }

  void DoClose() {
    if (fd_ < 0) return;
    poller_.Stop();
    alignas(4) char buf[128];
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    auto* g = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(queue_);
    nfqnl_msg_config_cmd c{NFQNL_CFG_CMD_UNBIND, 0, htons(AF_INET)};
    mnl_attr_put(nlh, NFQA_CFG_CMD, sizeof c, &c);
    SendRaw(nlh, nlh->nlmsg_len);  // closing the socket unbinds too; this just makes it explicit
    close(fd_);
    fd_ = -1;
    closePending_ = false;
    cb_.Reset();
    Unref();
  }

  int fd_ = -1;
  uint16_t queue_ = 0;
  uint32_t portid_ = 0, seq_ = 0, batch_ = 64, maxRounds_ = 16, defaultVerdict_ = V_ACCEPT, slotSize_ = 0;
  int rcvbufEffective_ = 0, sndLimit_ = 65536;
  uint8_t* slab_ = nullptr;
  uint32_t* meta_ = nullptr;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> riov_, siov_;
  std::vector<uint8_t> hdrs_;
  size_t sendBytes_ = 0;
  std::unordered_set<uint32_t> held_;
  std::vector<uint32_t> releasedInBatch_;
  bool inBatch_ = false, closePending_ = false;
  Counters counters_;
  Napi::Reference<Napi::ArrayBuffer> slabRef_, metaRef_;
  Napi::FunctionReference cb_;
  Napi::AsyncContext* actx_ = nullptr;
  Poller poller_;
};

}  // namespace

Napi::Function InitNfQueue(Napi::Env env) { return NfQueue::Init(env); }

}  // namespace sluice
