// Module registration only: the classes live in nfqueue.cc, tun.cc, inject.cc, rtnl.cc and notify.cc.
#include "batch_layout.h"
#include "common.h"

namespace sluice {
Napi::Function InitNfQueue(Napi::Env env);
Napi::Function InitTun(Napi::Env env);
void InitInject(Napi::Env env, Napi::Object exports);
Napi::Function InitRtnl(Napi::Env env);
void InitNotify(Napi::Env env, Napi::Object exports);
}  // namespace sluice

namespace {

// The layout numbers as this build knows them; src/io/binding.ts refuses an addon whose numbers
// differ from src/io/batch-layout.ts.
Napi::Object Layout(Napi::Env env) {
  using namespace sluice;
  Napi::Object o = Napi::Object::New(env);
  const std::pair<const char*, uint32_t> all[] = {
      {"META_STRIDE", META_STRIDE}, {"M_ID", M_ID}, {"M_OFFSET", M_OFFSET}, {"M_LENGTH", M_LENGTH},
      {"M_ORIG_LENGTH", M_ORIG_LENGTH}, {"M_MARK", M_MARK}, {"M_INDEV", M_INDEV}, {"M_OUTDEV", M_OUTDEV},
      {"M_HOOK", M_HOOK}, {"M_HW_PROTO", M_HW_PROTO}, {"M_SKB_FLAGS", M_SKB_FLAGS}, {"M_CAPACITY", M_CAPACITY},
      {"M_IN_FLAGS", M_IN_FLAGS}, {"M_VERDICT", M_VERDICT}, {"M_VMARK", M_VMARK}, {"M_OUT_FLAGS", M_OUT_FLAGS},
      {"M_NEW_LENGTH", M_NEW_LENGTH}, {"V_DROP", V_DROP}, {"V_ACCEPT", V_ACCEPT}, {"V_QUEUE", V_QUEUE},
      {"V_REPEAT", V_REPEAT}, {"V_HOLD", V_HOLD}, {"OUT_SET_MARK", OUT_SET_MARK}, {"OUT_REWRITTEN", OUT_REWRITTEN},
  };
  for (auto& [k, v] : all) o.Set(k, Napi::Number::New(env, v));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("layout", Layout(env));
  exports.Set("NfQueue", sluice::InitNfQueue(env));
  exports.Set("Tun", sluice::InitTun(env));
  exports.Set("Rtnl", sluice::InitRtnl(env));
  sluice::InitInject(env, exports);
  sluice::InitNotify(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(sluice_native, Init)
