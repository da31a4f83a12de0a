// What every packet source (NFQUEUE, TUN) shares: the options every source takes, the slab and the
// meta array handed to JavaScript, the poll handle, the one call into JavaScript per batch, and the
// close that waits for the batch in progress.
//
// Trust: JavaScript can write every slot of `meta` (and the slab). The addon keeps its own record
// of each batch position (id, offset, length, capacity) and never reads those back from `meta`;
// from `meta` it takes only the "out" slots, each checked (a verdict the addon may send, a length
// within the slot's own capacity).
#pragma once
#include <algorithm>
#include <vector>

#include "batch_layout.h"
#include "common.h"

namespace sluice {

// What the addon itself wrote for one batch position.
struct SlotRecord {
  uint32_t id = 0, offset = 0, length = 0, capacity = 0;
};

// A verdict the addon may send for a queued packet: NF_DROP and NF_ACCEPT plain, NF_QUEUE with
// its queue number (and bypass flag) in the upper bits, NF_REPEAT; V_HOLD where holding is allowed.
// Everything else (NF_STOLEN would leak the packet in the kernel, NF_DROP with an errno, unknown
// codes) is refused.
inline bool VerdictAllowed(uint32_t v, bool allowHold) {
  if (v == V_HOLD) return allowHold;
  switch (v & 0xff) {
    case V_DROP: case V_ACCEPT: case V_REPEAT: return (v >> 8) == 0;
    case V_QUEUE: return ((v >> 8) & 0x7f) == 0;  // bits 16..31: queue number, bit 15: bypass
    default: return false;
  }
}

// The verdict for "nobody decided": only drop or accept, anything else is drop.
inline uint32_t PlainVerdict(double v) { return v == V_ACCEPT ? V_ACCEPT : V_DROP; }

template <class T>
class BatchSource : public Napi::ObjectWrap<T> {
 public:
  explicit BatchSource(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info) {}

  ~BatchSource() override { delete actx_; }

  // close(): inside the batch handler the close waits until the batch's verdicts are sent.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (inBatch_) closePending_ = true;
    else static_cast<T*>(this)->DoClose();
    return info.Env().Undefined();
  }

 protected:
  // Checks the (options, onBatch) arguments and reads the options every source takes.
  bool ReadCommon(const Napi::CallbackInfo& info, const char* usage) {
    if (!info[0].IsObject() || !info[1].IsFunction()) {
      Napi::TypeError::New(info.Env(), usage).ThrowAsJavaScriptException();
      return false;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    batch_ = std::clamp<uint32_t>(static_cast<uint32_t>(NumOpt(o, "batchSize", 64)), 1, 1024);
    maxRounds_ = std::max<uint32_t>(1, static_cast<uint32_t>(NumOpt(o, "maxRounds", 16)));
    defaultVerdict_ = PlainVerdict(NumOpt(o, "defaultVerdict", V_ACCEPT));
    invalidVerdict_ = PlainVerdict(NumOpt(o, "invalidVerdict", V_DROP));
    return true;
  }

  // One slot of `slotSize` bytes per batch position, the meta array, and both exposed on `this`.
  void AllocSlab(Napi::Env env, uint32_t slotSize) {
    slotSize_ = slotSize;
    Napi::ArrayBuffer slabBuf = Napi::ArrayBuffer::New(env, static_cast<size_t>(slotSize_) * batch_);
    Napi::ArrayBuffer metaBuf = Napi::ArrayBuffer::New(env, static_cast<size_t>(META_STRIDE) * 4 * batch_);
    slab_ = static_cast<uint8_t*>(slabBuf.Data());
    meta_ = static_cast<uint32_t*>(metaBuf.Data());
    slabBytes_ = slabBuf.ByteLength();
    slabRef_ = Napi::Persistent(slabBuf);
    metaRef_ = Napi::Persistent(metaBuf);
    records_.assign(batch_, SlotRecord{});
    Napi::Object self = this->Value();
    self.Set("slab", Napi::Uint8Array::New(env, slabBuf.ByteLength(), slabBuf, 0));
    self.Set("meta", Napi::Uint32Array::New(env, META_STRIDE * batch_, metaBuf, 0));
    self.Set("batchSize", Napi::Number::New(env, batch_));
    self.Set("slotSize", Napi::Number::New(env, slotSize_));
  }

  // Starts polling fd; the poll handle points at us, so we stay alive until close().
  bool StartPolling(const Napi::CallbackInfo& info, int fd, const char* asyncName) {
    cb_ = Napi::Persistent(info[1].As<Napi::Function>());
    actx_ = new Napi::AsyncContext(info.Env(), asyncName);
    if (!poller_.Start(info.Env(), fd, static_cast<T*>(this), &BatchSource::OnPoll)) return false;
    this->Ref();
    return true;
  }

  // Records batch position i (the addon's own copy) and returns its meta row with the out slots
  // preset: the default verdict, no mark, not rewritten.
  uint32_t* Record(uint32_t i, uint32_t id, uint32_t offset, uint32_t length, uint32_t capacity) {
    records_[i] = {id, offset, length, capacity};
    uint32_t* m = meta_ + i * META_STRIDE;
    m[M_ID] = id;
    m[M_OFFSET] = offset;
    m[M_LENGTH] = length;
    m[M_CAPACITY] = capacity;
    m[M_VERDICT] = defaultVerdict_;
    m[M_VMARK] = 0;
    m[M_OUT_FLAGS] = 0;
    m[M_NEW_LENGTH] = length;
    return m;
  }

  // One JavaScript call for `count` recorded packets.
  void CallJs(Napi::Env env, uint32_t count) {
    inBatch_ = true;
    CallBatch(env, cb_, *actx_, this->Value(), count);
    inBatch_ = false;
  }

  // The verdict JavaScript wrote for position i, when the addon may send it; else the invalid
  // verdict (counted).
  uint32_t VerdictAt(uint32_t i, bool allowHold) {
    uint32_t v = meta_[i * META_STRIDE + M_VERDICT];
    if (VerdictAllowed(v, allowHold)) return v;
    badVerdicts_++;
    return invalidVerdict_;
  }

  // The rewritten length JavaScript asks for at position i: 0 when not rewritten; refused (counted,
  // sent unchanged) when it exceeds the slot's own capacity.
  uint32_t RewriteLengthAt(uint32_t i) {
    const uint32_t* m = meta_ + i * META_STRIDE;
    if (!(m[M_OUT_FLAGS] & OUT_REWRITTEN)) return 0;
    uint32_t n = m[M_NEW_LENGTH];
    if (n == 0 || n > records_[i].capacity) { badLengths_++; return 0; }
    return n;
  }

  bool MarkAt(uint32_t i, uint32_t* mark) const {
    const uint32_t* m = meta_ + i * META_STRIDE;
    if (!(m[M_OUT_FLAGS] & OUT_SET_MARK)) return false;
    *mark = m[M_VMARK];
    return true;
  }

  // The common part of closing: no more polls or calls into JavaScript.
  void StopSource() {
    poller_.Stop();
    closePending_ = false;
    cb_.Reset();
    this->Unref();
  }

  uint32_t batch_ = 64, maxRounds_ = 16, slotSize_ = 0, defaultVerdict_ = V_ACCEPT, invalidVerdict_ = V_DROP;
  uint8_t* slab_ = nullptr;
  uint32_t* meta_ = nullptr;
  size_t slabBytes_ = 0;
  std::vector<SlotRecord> records_;
  bool inBatch_ = false, closePending_ = false;
  double badVerdicts_ = 0, badLengths_ = 0;
  Poller poller_;

 private:
  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<T*>(h->data);
    if (self && status == 0) self->Drain();
  }

  Napi::Reference<Napi::ArrayBuffer> slabRef_, metaRef_;
  Napi::FunctionReference cb_;
  Napi::AsyncContext* actx_ = nullptr;
};

}  // namespace sluice
