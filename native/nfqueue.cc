// NFQUEUE source. Flow through this file:
//   1. open: netlink socket, receive buffer, one config message (bind + copy range + max length + flags)
//   2. uv_poll readable → recvmmsg up to `batch` datagrams into one slab (one slot per datagram)
//   3. parse each packet message's attributes, write its metadata into `meta` (batch_layout.h)
//   4. call JavaScript once with the count; JavaScript writes each packet's verdict into `meta`
//   5. hand the batch's verdicts to the VerdictSender (verdict_sender.cc), which sends them
//   6. repeat while the socket delivers full batches, at most `maxRounds` times per wake-up
// Mechanical only: every decision comes from JavaScript (or the configured default verdict when the
// handler threw before writing one). A packet JavaScript never saw (its datagram was cut short:
// MSG_TRUNC, or its message cannot be read) gets the queue's invalid verdict, explicitly, and is
// counted; none is left for a later VERDICT_BATCH to accept.
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

#include "batch_source.h"
#include "nfqueue_msg.h"
#include "verdict_sender.h"

namespace sluice {
namespace {

constexpr uint32_t HEADROOM = 64;        // before each slot's datagram; keeps slots 64-byte aligned

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

struct Counters {
  double received = 0, batches = 0, errors = 0, enobufs = 0, truncated = 0, unparsed = 0, unverdicted = 0,
         repeatedEarly = 0, lastErrno = 0, badReleases = 0;
};



class NfQueue : public BatchSource<NfQueue> {
  friend class BatchSource<NfQueue>;

 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NfQueue", {
      InstanceMethod<&NfQueue::Release>("release"),
      InstanceMethod<&NfQueue::Stats>("stats"),
      InstanceMethod("close", &NfQueue::Close),
    });
  }

  NfQueue(const Napi::CallbackInfo& info) : BatchSource<NfQueue>(info) {
    Napi::Env env = info.Env();
    if (!ReadCommon(info, "NfQueue(options, onBatch)")) return;
    Napi::Object o = info[0].As<Napi::Object>();
    queue_ = static_cast<uint16_t>(NumOpt(o, "queue", 0));
    uint32_t copyRange = std::min<uint32_t>(MAX_PAYLOAD, static_cast<uint32_t>(NumOpt(o, "copyRange", MAX_PAYLOAD)));
    if (copyRange == 0) copyRange = MAX_PAYLOAD;
    uint32_t maxLen = static_cast<uint32_t>(NumOpt(o, "maxLen", 1024));
    // Fault injection for tests: receive at most this many bytes per datagram (forces MSG_TRUNC),
    // and treat every Nth packet message as unreadable (the Parse failure path).
    double recvLimit = NumOpt(o, "faultRecvLimit", 0);
    faultParseEvery_ = static_cast<uint32_t>(std::max(0.0, NumOpt(o, "faultParseEvery", 0)));
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
    int sndLimit = std::max(4096, v - 1024);
    // Without NETLINK_NO_ENOBUFS an overflow makes the next recv fail with ENOBUFS; the kernel's
    // per-queue counters (user_dropped) still record the loss.
    int one = 1;
    if (BoolOpt(o, "noEnobufs", true)) setsockopt(fd_, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

    // The slab: one slot per datagram of a batch; the datagram starts HEADROOM bytes into its slot.
    AllocSlab(env, (HEADROOM + MSG_OVERHEAD + copyRange + GROW_ROOM + 63) & ~63u);
    msgs_.resize(batch_);
    riov_.resize(batch_);
    uint32_t recvBytes = slotSize_ - HEADROOM;
    if (recvLimit >= 64 && recvLimit < recvBytes) recvBytes = static_cast<uint32_t>(recvLimit);
    for (uint32_t i = 0; i < batch_; i++) {
      riov_[i] = {slab_ + static_cast<size_t>(i) * slotSize_ + HEADROOM, recvBytes};
      msgs_[i].msg_hdr = {};
      msgs_[i].msg_hdr.msg_iov = &riov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    out_.resize(batch_);
    invalid_.reserve(batch_);
    sender_.Init(fd_, queue_, batch_, sndLimit);

    int err = Configure(NFQNL_CFG_CMD_BIND, copyRange, maxLen, flags, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO | NFQA_CFG_F_CONNTRACK);
    if (err == EAGAIN) err = Configure(NFQNL_CFG_CMD_BIND, copyRange, maxLen, flags, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO | NFQA_CFG_F_CONNTRACK);
    if (err) { FailConfig(env, err, flags); return; }

    Napi::Object self = Value();
    self.Set("rcvbufBytes", Napi::Number::New(env, rcvbufEffective_));
    self.Set("copyRange", Napi::Number::New(env, copyRange));
    if (!StartPolling(info, fd_, "sluice:nfqueue")) { Fail(env, "NFQUEUE: uv_poll_init", EINVAL); return; }
  }

  ~NfQueue() override {
    poller_.Stop();
    if (fd_ >= 0) close(fd_);
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
    alignas(4) char buf[CONFIG_MSG_BYTES];
    nlmsghdr* nlh = BuildConfig(buf, ++seq_, queue_, cmd, copyRange, maxLen, flags, mask);
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
    // thread_local: worker threads bind their queues at the same time (workers: N).
    alignas(4) static thread_local uint8_t buf[MSG_OVERHEAD + MAX_PAYLOAD + GROW_ROOM];
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
        uint32_t id;
        if (nlh->nlmsg_type == MSG_PACKET && FindPacketId(reinterpret_cast<uint8_t*>(nlh), nlh->nlmsg_len, &id)) {
          sender_.SendOne(id, V_REPEAT, -1, nullptr, 0);
          counters_.repeatedEarly++;
        }
      }
    }
    return ETIMEDOUT;
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
      invalid_.clear();
      for (int i = 0; i < n; i++) {
        uint8_t* start = static_cast<uint8_t*>(riov_[i].iov_base);
        const uint8_t* slotEnd = start - HEADROOM + slotSize_;
        int left = static_cast<int>(msgs_[i].msg_len);
        if (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) {
          // Cut short: the packet cannot be handed on whole, but it is still queued in the kernel.
          counters_.truncated++;
          Unreadable(start, left);
          continue;
        }
        for (auto* nlh = reinterpret_cast<nlmsghdr*>(start); mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
          if (nlh->nlmsg_type == NLMSG_ERROR) {
            auto* e = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
            if (e->error) { counters_.errors++; counters_.lastErrno = -e->error; }
          } else if (nlh->nlmsg_type == MSG_PACKET && count < batch_) {
            // The kernel sends one packet per datagram, so `count < batch_` always holds.
            uint32_t* m = meta_ + count * META_STRIDE;
            SlotRecord rec;
            bool ok = ParsePacket(nlh, m, &rec, slab_, slotEnd);
            if (ok && faultParseEvery_ && ++faultSeen_ % faultParseEvery_ == 0) ok = false;
            if (!ok) {
              counters_.unparsed++;
              Unreadable(reinterpret_cast<uint8_t*>(nlh), static_cast<int>(nlh->nlmsg_len));
              continue;
            }
            Record(count, rec.id, rec.offset, rec.length, rec.capacity);
            count++;
          }
        }
      }
      if (count) {
        counters_.received += count;
        counters_.batches++;
        releasedInBatch_.clear();
        CallJs(env, count);
        for (uint32_t i = 0; i < count; i++) {
          VerdictSender::Out& o = out_[i];
          o.verdict = VerdictAt(i, true);
          o.hasMark = MarkAt(i, &o.mark);
          o.newLength = RewriteLengthAt(i);
        }
      }
      if (count || !invalid_.empty())
        sender_.SendBatch(slab_, records_, out_, count, invalid_, invalidVerdict_, releasedInBatch_);
      if (closePending_) { DoClose(); return; }
      if (static_cast<uint32_t>(n) < batch_) return;
    }
  }

  // A packet message JavaScript will not see: its id gets the invalid verdict with this batch; with
  // no readable id, VERDICT_BATCH is off for good (it would accept the packet).
  void Unreadable(const uint8_t* msg, int avail) {
    uint32_t id;
    if (FindPacketId(msg, avail, &id)) {
      invalid_.push_back(id);
    } else {
      counters_.unverdicted++;
      sender_.LostId();
    }
  }

  // release(id, verdict, mark (-1 keeps it), payload?: Uint8Array | null): one verdict now, for a
  // packet that is owed one (held, or in the batch being handled). Anything else is refused (false,
  // counted): JavaScript cannot decide a packet the addon did not hand it, or decide one twice.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) return Napi::Boolean::New(env, false);
    if (!info[0].IsNumber() || !info[1].IsNumber()) { counters_.badReleases++; return Napi::Boolean::New(env, false); }
    uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    uint32_t verdict = info[1].As<Napi::Number>().Uint32Value();
    int64_t mark = info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : -1;
    bool owed = sender_.Owed(id);
    if (!owed && inBatch_) {
      for (const SlotRecord& r : records_) if (r.id == id) { owed = true; break; }
      if (std::find(releasedInBatch_.begin(), releasedInBatch_.end(), id) != releasedInBatch_.end()) owed = false;
    }
    if (!owed || !VerdictAllowed(verdict, false)) { counters_.badReleases++; return Napi::Boolean::New(env, false); }
    const uint8_t* payload = nullptr;
    uint32_t plen = 0;
    if (info[3].IsTypedArray() && info[3].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      Napi::Uint8Array u = info[3].As<Napi::Uint8Array>();
      payload = u.Data();
      plen = static_cast<uint32_t>(std::min<size_t>(u.ByteLength(), MAX_PAYLOAD));
      if (plen == 0) payload = nullptr;
    }
    sender_.Settle(id);
    if (inBatch_) releasedInBatch_.push_back(id);
    sender_.SendOne(id, verdict, mark < 0 ? -1 : (mark & 0xffffffff), payload, plen);
    return Napi::Boolean::New(env, true);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    const Counters& c = counters_;
    const VerdictSender::Stats& v = sender_.stats();
    o.Set("received", c.received);
    o.Set("batches", c.batches);
    o.Set("verdicts", v.verdicts);
    o.Set("sendmsgCalls", v.sendmsgCalls);
    o.Set("batchVerdicts", v.batchVerdicts);
    o.Set("errors", c.errors + v.errors);
    o.Set("enobufs", c.enobufs);
    o.Set("heldOutstanding", static_cast<double>(sender_.heldCount()));
    o.Set("truncated", c.truncated);
    o.Set("unparsed", c.unparsed);
    o.Set("unverdicted", c.unverdicted);
    o.Set("badVerdicts", badVerdicts_);
    o.Set("badLengths", badLengths_);
    o.Set("badReleases", c.badReleases);
    o.Set("repeatedEarly", c.repeatedEarly);
    o.Set("lastErrno", v.lastErrno ? v.lastErrno : c.lastErrno);
    return o;
  }

  // Unbinds and closes (the kernel drops whatever is still queued).
  void DoClose() {
    if (fd_ < 0) return;
    alignas(4) char buf[CONFIG_MSG_BYTES];
    nlmsghdr* nlh = BuildUnbind(buf, queue_);
    SendRaw(nlh, nlh->nlmsg_len);  // closing the socket unbinds too; this just makes it explicit
    StopSource();
    close(fd_);
    fd_ = -1;
  }

  int fd_ = -1;
  uint16_t queue_ = 0;
  uint32_t portid_ = 0, seq_ = 0, faultParseEvery_ = 0, faultSeen_ = 0;
  int rcvbufEffective_ = 0;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> riov_;
  std::vector<VerdictSender::Out> out_;
  std::vector<uint32_t> invalid_, releasedInBatch_;
  VerdictSender sender_;
  Counters counters_;
};

}  // namespace

Napi::Function InitNfQueue(Napi::Env env) { return NfQueue::Init(env); }

}  // namespace sluice
