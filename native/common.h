// Small helpers shared by the packet sources (NFQUEUE, TUN) and the injector.
#pragma once
#include <napi.h>
#include <uv.h>
#include <cerrno>
#include <cstring>
#include <string>

namespace sluice {

inline Napi::Error ErrnoError(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

// Reads an optional numeric option; `def` when absent or undefined.
inline double NumOpt(const Napi::Object& o, const char* key, double def) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
}

inline bool BoolOpt(const Napi::Object& o, const char* key, bool def) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : def;
}

// Calls the JavaScript batch handler from a libuv callback (no JavaScript on the stack). MakeCallback
// runs the microtask queue afterwards, like any Node I/O callback. An exception thrown by the handler
// goes to process 'uncaughtException' (never swallowed); the caller still sends the batch's verdicts.
inline void CallBatch(Napi::Env env, Napi::FunctionReference& fn, Napi::AsyncContext& ctx, napi_value recv,
                      uint32_t count) {
  Napi::HandleScope scope(env);
  napi_value arg = Napi::Number::New(env, count);
  napi_value result;
  napi_status st = napi_make_callback(env, ctx, recv, fn.Value(), 1, &arg, &result);
  if (st == napi_pending_exception) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    napi_fatal_exception(env, e);
  }
}

// A uv_poll_t owned by a C++ object; the handle outlives the object until libuv's close callback.
struct Poller {
  uv_poll_t* handle = nullptr;
  napi_env env_ = nullptr;

  template <typename T>
  bool Start(Napi::Env env, int fd, T* owner, void (*cb)(uv_poll_t*, int, int)) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle = new uv_poll_t;
    if (uv_poll_init(loop, handle, fd) != 0) {
      delete handle;
      handle = nullptr;
      return false;
    }
    handle->data = owner;
    uv_poll_start(handle, UV_READABLE, cb);
    // A worker thread that ends (workers: N) tears its loop down: close the handle while the loop
    // still runs, not later from a destructor on a loop that is gone.
    env_ = env;
    napi_add_env_cleanup_hook(env_, &Poller::OnEnvExit, this);
    return true;
  }

  static void OnEnvExit(void* arg) {
    auto* self = static_cast<Poller*>(arg);
    self->env_ = nullptr;  // the hook has run: nothing to remove
    if (!self->handle) return;
    uv_poll_stop(self->handle);
    self->handle->data = nullptr;
    // No close callback: the thread unloads this addon before libuv finishes closing, and a
    // callback here would run code that is gone. The handle (a few dozen bytes) is left to the
    // thread's end.
    uv_close(reinterpret_cast<uv_handle_t*>(self->handle), nullptr);
    self->handle = nullptr;
  }

  ~Poller() { Stop(); }

  void Stop() {
    if (env_) { napi_remove_env_cleanup_hook(env_, &Poller::OnEnvExit, this); env_ = nullptr; }
    if (!handle) return;
    uv_poll_stop(handle);
    handle->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle = nullptr;
  }
};

}  // namespace sluice
