// sd_notify(3) without libsystemd: one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket named
// by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). Node has no AF_UNIX datagram
// sockets, hence this function; src/obs/sdnotify.ts decides what to send and when.
//   notifySend(socketName: string, message: Uint8Array) → 0 or errno
// A fresh socket per message: messages are rare (ready, reload, stop, a watchdog ping per few seconds).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "common.h"

namespace sluice {
namespace {

Napi::Value NotifySend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsTypedArray()) return Napi::Number::New(env, EINVAL);
  std::string name = info[0].As<Napi::String>().Utf8Value();
  Napi::Uint8Array msg = info[1].As<Napi::Uint8Array>();
  sockaddr_un to{};
  to.sun_family = AF_UNIX;
  // A path must be absolute; "@" starts an abstract name (a leading NUL on the wire).
  if (name.size() < 2 || (name[0] != '/' && name[0] != '@') || name.size() > sizeof to.sun_path) return Napi::Number::New(env, EINVAL);
  memcpy(to.sun_path, name.data(), name.size());
  if (name[0] == '@') to.sun_path[0] = '\0';
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (name[0] == '/' ? 1 : 0));
  if (name[0] == '/' && name.size() == sizeof to.sun_path) return Napi::Number::New(env, EINVAL);  // no room for the NUL
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, errno);
  ssize_t r = sendto(fd, msg.Data(), msg.ByteLength(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&to), len);
  int e = r < 0 ? errno : 0;
  close(fd);
  return Napi::Number::New(env, e);
}

}  // namespace

void InitNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("notifySend", Napi::Function::New(env, NotifySend, "notifySend"));
}

}  // namespace sluice
