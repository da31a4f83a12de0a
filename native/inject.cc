// Injection sockets: crafted IPv4 packets out of a chosen interface. Plain functions over file
// descriptors; src/io/inject.ts caches one socket per interface and turns errors into counters.
//   openIp(ifindex)  raw IPv4, IP_HDRINCL, bound to the device, broadcast allowed → fd or -errno
//   sendIp(fd, packet, dst)                                                         → 0 or errno
//   openL2(ifindex)  AF_PACKET SOCK_DGRAM, ETH_P_IP (the kernel builds the Ethernet header) → fd or -errno
//   sendL2(fd, ifindex, dstMac, packet)                                              → 0 or errno
//   closeFd(fd)
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

namespace sluice {
namespace {

int Fail(int fd) {
  int e = errno;
  if (fd >= 0) close(fd);
  return -e;
}

Napi::Value OpenIp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_RAW);
  if (fd < 0) return Napi::Number::New(env, Fail(-1));
  int one = 1;
  // SO_BINDTOIFINDEX (Linux 5.0) pins the route lookup to this device, so a reply leaves through the
  // interface it is meant for even when another interface carries the same address.
  if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &ifindex, sizeof ifindex) < 0)
    return Napi::Number::New(env, Fail(fd));
  return Napi::Number::New(env, fd);
}

Napi::Value SendIp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Uint8Array p = info[1].As<Napi::Uint8Array>();
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(info[2].As<Napi::Number>().Uint32Value());
  ssize_t r = sendto(fd, p.Data(), p.ByteLength(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  return Napi::Number::New(env, r < 0 ? errno : 0);
}

Napi::Value OpenL2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  // Protocol 0: a send-only socket that receives nothing (no copy of every frame into our buffer).
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Napi::Number::New(env, Fail(-1));
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = ifindex;
  sll.sll_protocol = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) return Napi::Number::New(env, Fail(fd));
  return Napi::Number::New(env, fd);
}

Napi::Value SendL2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int ifindex = info[1].As<Napi::Number>().Int32Value();
  Napi::Uint8Array mac = info[2].As<Napi::Uint8Array>();
  Napi::Uint8Array p = info[3].As<Napi::Uint8Array>();
  if (mac.ByteLength() != 6) return Napi::Number::New(env, EINVAL);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = ifindex;
  to.sll_protocol = htons(ETH_P_IP);
  to.sll_halen = 6;
  memcpy(to.sll_addr, mac.Data(), 6);
  ssize_t r = sendto(fd, p.Data(), p.ByteLength(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  return Napi::Number::New(env, r < 0 ? errno : 0);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

}  // namespace

void InitInject(Napi::Env env, Napi::Object exports) {
  exports.Set("openIp", Napi::Function::New(env, OpenIp, "openIp"));
  exports.Set("sendIp", Napi::Function::New(env, SendIp, "sendIp"));
  exports.Set("openL2", Napi::Function::New(env, OpenL2, "openL2"));
  exports.Set("sendL2", Napi::Function::New(env, SendL2, "sendL2"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
}

}  // namespace sluice
