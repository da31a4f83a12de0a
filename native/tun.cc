// TUN source: the same batch shape as NFQUEUE over a TUN device (IFF_TUN | IFF_NO_PI).
//   readable → read() up to `batch` packets into the slab (one slot each) → meta (M_HOOK = 0xffffffff,
//   M_ID = a sequence number) → one JavaScript call → V_ACCEPT packets are written back into the
//   device (rewritten length when OUT_REWRITTEN), every other verdict drops the packet.
// A TUN device has no skb mark: OUT_SET_MARK cannot be carried and is only counted (marksIgnored).
// What the addon writes back comes from its own record of each slot (offset, length, capacity),
// never from offsets read back out of `meta`.
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <algorithm>

#include "batch_source.h"

namespace sluice {
namespace {

constexpr uint32_t HEADROOM = 64;
constexpr uint32_t GROW_ROOM = 256;

class Tun : public BatchSource<Tun> {
  friend class BatchSource<Tun>;

 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Tun", {
      InstanceMethod<&Tun::Write>("write"),
      InstanceMethod<&Tun::Stats>("stats"),
      InstanceMethod("close", &Tun::Close),
    });
  }

  Tun(const Napi::CallbackInfo& info) : BatchSource<Tun>(info) {
    Napi::Env env = info.Env();
    if (!ReadCommon(info, "Tun(options, onBatch)")) return;
    Napi::Object o = info[0].As<Napi::Object>();
    std::string name = o.Get("name").IsString() ? o.Get("name").As<Napi::String>().Utf8Value() : "";
    // workers: N opens one queue of the device per worker thread; the kernel picks the queue by flow hash.
    const bool multiQueue = o.Get("multiQueue").ToBoolean().Value();
    maxPacket_ = std::clamp<uint32_t>(static_cast<uint32_t>(NumOpt(o, "maxPacket", 65535)), 576, 65535);
    if (name.size() >= IFNAMSIZ) {
      Napi::Error::New(env, "TUN: interface name too long: " + name).ThrowAsJavaScriptException();
      return;
    }
    fd_ = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) {
      int e = errno;
      ErrnoError(env, e == EACCES || e == EPERM ? "TUN: /dev/net/tun needs CAP_NET_ADMIN (run as root)" : "TUN: open /dev/net/tun", e)
          .ThrowAsJavaScriptException();
      return;
    }
    // Creates the device, or attaches to an existing persistent one of the same name.
    ifreq ifr{};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (multiQueue ? IFF_MULTI_QUEUE : 0);
    memcpy(ifr.ifr_name, name.data(), name.size());
    if (ioctl(fd_, TUNSETIFF, &ifr) < 0) {
      int e = errno;
      close(fd_);
      fd_ = -1;
      ErrnoError(env, e == EPERM ? "TUN " + name + ": needs CAP_NET_ADMIN (run as root)"
                     : e == EBUSY ? "TUN " + name + ": device is in use by another process"
                     : e == EINVAL && multiQueue ? "TUN " + name + ": cannot open a queue of it (a persistent device made without multi_queue, or the kernel's queue limit): remove it, or create it with `ip tuntap add " + name + " mode tun multi_queue`"
                                  : "TUN " + name + ": TUNSETIFF", e).ThrowAsJavaScriptException();
      return;
    }
    name_ = ifr.ifr_name;
    ifindex_ = if_nametoindex(ifr.ifr_name);
    AllocSlab(env, (HEADROOM + maxPacket_ + GROW_ROOM + 63) & ~63u);
    Napi::Object self = Value();
    self.Set("name", Napi::String::New(env, name_));
    self.Set("ifindex", Napi::Number::New(env, ifindex_));
    if (!StartPolling(info, fd_, "sluice:tun")) {
      close(fd_);
      fd_ = -1;
      Napi::Error::New(env, "TUN: uv_poll_init failed").ThrowAsJavaScriptException();
      return;
    }
  }

  ~Tun() override {
    poller_.Stop();
    if (fd_ >= 0) close(fd_);
  }

 private:
  void Drain() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);  // a libuv callback: no JavaScript scope is open
    for (uint32_t round = 0; round < maxRounds_ && fd_ >= 0; round++) {
      uint32_t count = 0;
      while (count < batch_) {
        uint8_t* p = slab_ + static_cast<size_t>(count) * slotSize_ + HEADROOM;
        ssize_t n = read(fd_, p, slotSize_ - HEADROOM);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno != EAGAIN) { errors_++; lastErrno_ = errno; }
          break;
        }
        if (n == 0) break;
        uint32_t* m = Record(count, ++seq_, static_cast<uint32_t>(p - slab_), static_cast<uint32_t>(n),
                             std::min<uint32_t>(65535, slotSize_ - HEADROOM));
        m[M_ORIG_LENGTH] = static_cast<uint32_t>(n);
        m[M_MARK] = 0;
        m[M_INDEV] = ifindex_;
        m[M_OUTDEV] = 0;
        m[M_HOOK] = 0xffffffff;
        m[M_HW_PROTO] = (p[0] >> 4) == 6 ? 0x86dd : 0x0800;
        m[M_SKB_FLAGS] = 0;
        m[M_IN_FLAGS] = 0;
        count++;
      }
      if (!count) return;
      received_ += count;
      batches_++;
      CallJs(env, count);
      for (uint32_t i = 0; i < count; i++) {
        uint32_t mark;
        if (MarkAt(i, &mark)) marksIgnored_++;
        uint32_t v = VerdictAt(i, true);
        if (v == V_HOLD) { held_++; continue; }
        if (v != V_ACCEPT) { dropped_++; continue; }
        uint32_t len = RewriteLengthAt(i);
        const SlotRecord& r = records_[i];
        WriteOut(slab_ + r.offset, len ? len : r.length);
      }
      if (closePending_) { DoClose(); return; }
      if (count < batch_) return;
    }
  }

  bool WriteOut(const uint8_t* p, size_t len) {
    ssize_t r;
    do r = write(fd_, p, len); while (r < 0 && errno == EINTR);
    if (r < 0) { errors_++; lastErrno_ = errno; return false; }
    written_++;
    return true;
  }

  // write(packet: Uint8Array): an IP packet into the device (held packets, crafted replies).
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || !info[0].IsTypedArray()) return Napi::Boolean::New(env, false);
    Napi::Uint8Array u = info[0].As<Napi::Uint8Array>();
    return Napi::Boolean::New(env, WriteOut(u.Data(), u.ByteLength()));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("received", received_);
    o.Set("batches", batches_);
    o.Set("written", written_);
    o.Set("dropped", dropped_);
    o.Set("held", held_);
    o.Set("marksIgnored", marksIgnored_);
    o.Set("errors", errors_);
    o.Set("badVerdicts", badVerdicts_);
    o.Set("badLengths", badLengths_);
    o.Set("lastErrno", lastErrno_);
    return o;
  }

  void DoClose() {
    if (fd_ < 0) return;
    StopSource();
    close(fd_);
    fd_ = -1;
  }

  int fd_ = -1;
  std::string name_;
  uint32_t ifindex_ = 0, maxPacket_ = 65535, seq_ = 0;
  double received_ = 0, batches_ = 0, written_ = 0, dropped_ = 0, held_ = 0, marksIgnored_ = 0, errors_ = 0,
         lastErrno_ = 0;
};

}  // namespace

Napi::Function InitTun(Napi::Env env) { return Tun::Init(env); }

}  // namespace sluice
