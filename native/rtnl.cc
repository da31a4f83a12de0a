// rtnetlink: interface and IPv4 address tracking from kernel events, and the kernel's own route
// lookup. Mechanical, like the rest of the addon: it parses netlink attributes into plain objects
// and hands them to JavaScript; the interface table itself lives in src/io/interfaces.ts.
//
//   new Rtnl(onEvents)   subscribes to RTNLGRP_LINK and RTNLGRP_IPV4_IFADDR on its own socket;
//                        readable → recv until EAGAIN → one onEvents([...]) call per wake-up.
//                        A receive-buffer overflow (ENOBUFS: events were lost) is reported as
//                        {type: 'overflow'}: JavaScript then takes a new dump.
//   dump()               RTM_GETLINK + RTM_GETADDR (IPv4) dumps on a second socket, synchronously:
//                        [{type: 'link', ...}, ..., {type: 'addr', ...}, ...]
//   route(dst, mark)     RTM_GETROUTE for an IPv4 destination (and fwmark, so `ip rule` applies):
//                        {ifindex, gateway, prefsrc} or null (no route / unreachable).
//   close()
// Event objects: {type: 'link'|'dellink', index, name, mac (Buffer, may be empty), flags, up}
//                {type: 'addr'|'deladdr', index, address (uint32), prefixLength}
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <memory>
#include <vector>

#include "common.h"

namespace sluice {
namespace {

struct ParseCtx {
  Napi::Env env;
  Napi::Array out;
  uint32_t n = 0;
};

int LinkAttr(const nlattr* a, void* data) {
  const nlattr** tb = static_cast<const nlattr**>(data);
  int type = mnl_attr_get_type(a);
  if (mnl_attr_type_valid(a, IFLA_MAX) < 0) return MNL_CB_OK;
  if (type == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0) return MNL_CB_OK;
  tb[type] = a;
  return MNL_CB_OK;
}

int AddrAttr(const nlattr* a, void* data) {
  const nlattr** tb = static_cast<const nlattr**>(data);
  int type = mnl_attr_get_type(a);
  if (mnl_attr_type_valid(a, IFA_MAX) < 0) return MNL_CB_OK;
  if ((type == IFA_LOCAL || type == IFA_ADDRESS) && mnl_attr_validate(a, MNL_TYPE_U32) < 0) return MNL_CB_OK;
  tb[type] = a;
  return MNL_CB_OK;
}

// One RTM_{NEW,DEL}{LINK,ADDR} message → one event object (others are ignored).
int OnMessage(const nlmsghdr* nlh, void* data) {
  ParseCtx* c = static_cast<ParseCtx*>(data);
  Napi::Env env = c->env;
  uint16_t t = nlh->nlmsg_type;
  if (t == RTM_NEWLINK || t == RTM_DELLINK) {
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return MNL_CB_OK;
    const ifinfomsg* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    const nlattr* tb[IFLA_MAX + 1] = {};
    mnl_attr_parse(nlh, sizeof(*ifi), LinkAttr, tb);
    Napi::Object o = Napi::Object::New(env);
    o.Set("type", t == RTM_NEWLINK ? "link" : "dellink");
    o.Set("index", Napi::Number::New(env, ifi->ifi_index));
    o.Set("flags", Napi::Number::New(env, ifi->ifi_flags));
    o.Set("name", tb[IFLA_IFNAME] ? mnl_attr_get_str(tb[IFLA_IFNAME]) : "");
    if (tb[IFLA_ADDRESS]) {
      uint16_t len = mnl_attr_get_payload_len(tb[IFLA_ADDRESS]);
      o.Set("mac", Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(mnl_attr_get_payload(tb[IFLA_ADDRESS])), len));
    } else {
      o.Set("mac", Napi::Buffer<uint8_t>::New(env, 0));
    }
    c->out.Set(c->n++, o);
  } else if (t == RTM_NEWADDR || t == RTM_DELADDR) {
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return MNL_CB_OK;
    const ifaddrmsg* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
    if (ifa->ifa_family != AF_INET) return MNL_CB_OK;
    const nlattr* tb[IFA_MAX + 1] = {};
    mnl_attr_parse(nlh, sizeof(*ifa), AddrAttr, tb);
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on point-to-point links.
    const nlattr* a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    if (!a) return MNL_CB_OK;
    Napi::Object o = Napi::Object::New(env);
    o.Set("type", t == RTM_NEWADDR ? "addr" : "deladdr");
    o.Set("index", Napi::Number::New(env, ifa->ifa_index));
    o.Set("address", Napi::Number::New(env, ntohl(mnl_attr_get_u32(a))));
    o.Set("prefixLength", Napi::Number::New(env, ifa->ifa_prefixlen));
    c->out.Set(c->n++, o);
  }
  return MNL_CB_OK;
}

mnl_socket* OpenSocket(unsigned groups, int rcvbuf) {
  mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | (groups ? SOCK_NONBLOCK : 0));
  if (!nl) return nullptr;
  if (rcvbuf > 0) {
    int fd = mnl_socket_get_fd(nl);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
    mnl_socket_close(nl);
    return nullptr;
  }
  if (!groups) {
    // The synchronous socket never waits long: a kernel that does not answer is an error, not a hang.
    timeval tv{0, 500000};
    setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  return nl;
}

class Rtnl : public Napi::ObjectWrap<Rtnl> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Rtnl", {
      InstanceMethod<&Rtnl::Dump>("dump"),
      InstanceMethod<&Rtnl::Route>("route"),
      InstanceMethod<&Rtnl::Close>("close"),
    });
  }

  Rtnl(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Rtnl>(info), buf_(MNL_SOCKET_BUFFER_SIZE) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) {
      Napi::TypeError::New(env, "Rtnl(onEvents)").ThrowAsJavaScriptException();
      return;
    }
    events_ = OpenSocket(RTMGRP_LINK | RTMGRP_IPV4_IFADDR, 4 << 20);
    sync_ = OpenSocket(0, 0);
    if (!events_ || !sync_) {
      int e = errno;
      Cleanup();
      ErrnoError(env, "rtnetlink: socket", e).ThrowAsJavaScriptException();
      return;
    }
    onEvents_ = Napi::Persistent(info[0].As<Napi::Function>());
    ctx_ = std::make_unique<Napi::AsyncContext>(env, "sluice:rtnl");
    if (!poll_.Start(env, mnl_socket_get_fd(events_), this, OnReadable)) {
      Cleanup();
      Napi::Error::New(env, "rtnetlink: uv_poll_init failed").ThrowAsJavaScriptException();
      return;
    }
    Ref();  // alive while subscribed, even when JavaScript drops its reference
  }

  ~Rtnl() override { Cleanup(); }

 private:
  static void OnReadable(uv_poll_t* h, int status, int events) {
    Rtnl* self = static_cast<Rtnl*>(h->data);
    if (self) self->Drain();
  }

  void Drain() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    ParseCtx c{env, Napi::Array::New(env)};
    // A bounded slice per wake-up (a burst of thousands of links going away must not hold the
    // packet loop): what is left stays in the socket and uv_poll wakes us again after other work.
    for (int round = 0; round < 64 && c.n < kMaxEventsPerCall; round++) {
      ssize_t n = mnl_socket_recvfrom(events_, buf_.data(), buf_.size());
      if (n < 0) {
        if (errno == ENOBUFS) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("type", "overflow");
          c.out.Set(c.n++, o);
          continue;
        }
        break;  // EAGAIN: drained
      }
      mnl_cb_run(buf_.data(), n, 0, 0, OnMessage, &c);
    }
    if (c.n == 0) return;
    napi_value arg = c.out;
    napi_value result;
    napi_status st = napi_make_callback(env, *ctx_, Value(), onEvents_.Value(), 1, &arg, &result);
    if (st == napi_pending_exception) {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
      napi_fatal_exception(env, e);
    }
  }

  // Sends one request on the synchronous socket and runs the answer through OnMessage.
  bool Request(ParseCtx& c, nlmsghdr* nlh, mnl_cb_t cb) {
    uint32_t seq = ++seq_;
    nlh->nlmsg_seq = seq;
    if (mnl_socket_sendto(sync_, nlh, nlh->nlmsg_len) < 0) return false;
    uint32_t portid = mnl_socket_get_portid(sync_);
    std::vector<char> rb(MNL_SOCKET_BUFFER_SIZE * 8);
    for (;;) {
      ssize_t n = mnl_socket_recvfrom(sync_, rb.data(), rb.size());
      if (n < 0) return false;
      int r = mnl_cb_run(rb.data(), n, seq, portid, cb, &c);
      if (r <= MNL_CB_STOP) return r == MNL_CB_STOP;
    }
  }

  Napi::Value Dump(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!sync_) return env.Null();
    ParseCtx c{env, Napi::Array::New(env)};
    char b[MNL_SOCKET_BUFFER_SIZE];
    nlmsghdr* nlh = mnl_nlmsg_put_header(b);
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    rtgenmsg* g = static_cast<rtgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtgenmsg)));
    g->rtgen_family = AF_UNSPEC;
    if (!Request(c, nlh, OnMessage)) {
      ErrnoError(env, "rtnetlink: link dump", errno).ThrowAsJavaScriptException();
      return env.Null();
    }
    nlh = mnl_nlmsg_put_header(b);
    nlh->nlmsg_type = RTM_GETADDR;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    g = static_cast<rtgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtgenmsg)));
    g->rtgen_family = AF_INET;
    if (!Request(c, nlh, OnMessage)) {
      ErrnoError(env, "rtnetlink: address dump", errno).ThrowAsJavaScriptException();
      return env.Null();
    }
    return c.out;
  }

  struct RouteAnswer {
    bool found = false;
    uint32_t oif = 0, gateway = 0, prefsrc = 0;
    uint8_t type = 0;
  };

  static int RouteAttr(const nlattr* a, void* data) {
    RouteAnswer* r = static_cast<RouteAnswer*>(data);
    switch (mnl_attr_get_type(a)) {
      case RTA_OIF: if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0) r->oif = mnl_attr_get_u32(a); break;
      case RTA_GATEWAY: if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0) r->gateway = ntohl(mnl_attr_get_u32(a)); break;
      case RTA_PREFSRC: if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0) r->prefsrc = ntohl(mnl_attr_get_u32(a)); break;
      default: break;
    }
    return MNL_CB_OK;
  }

  Napi::Value Route(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!sync_ || !info[0].IsNumber()) return env.Null();
    uint32_t dst = info[0].As<Napi::Number>().Uint32Value();
    uint32_t mark = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
    char b[MNL_SOCKET_BUFFER_SIZE];
    nlmsghdr* nlh = mnl_nlmsg_put_header(b);
    nlh->nlmsg_type = RTM_GETROUTE;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    rtmsg* rm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
    rm->rtm_family = AF_INET;
    rm->rtm_dst_len = 32;
    mnl_attr_put_u32(nlh, RTA_DST, htonl(dst));
    if (mark) mnl_attr_put_u32(nlh, RTA_MARK, mark);
    RouteAnswer r;
    struct Tramp { RouteAnswer* r; } t{&r};
    auto cb = [](const nlmsghdr* nlh, void* data) -> int {
      Tramp* t = static_cast<Tramp*>(data);
      if (nlh->nlmsg_type != RTM_NEWROUTE || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return MNL_CB_OK;
      const rtmsg* rm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
      t->r->type = rm->rtm_type;
      mnl_attr_parse(nlh, sizeof(*rm), RouteAttr, t->r);
      t->r->found = true;
      return MNL_CB_STOP;
    };
    uint32_t seq = ++seq_;
    nlh->nlmsg_seq = seq;
    if (mnl_socket_sendto(sync_, nlh, nlh->nlmsg_len) < 0) return env.Null();
    std::vector<char> rb(MNL_SOCKET_BUFFER_SIZE);
    uint32_t portid = mnl_socket_get_portid(sync_);
    for (;;) {
      ssize_t n = mnl_socket_recvfrom(sync_, rb.data(), rb.size());
      if (n < 0) return env.Null();  // includes the kernel's "no route" error answer (ENETUNREACH)
      int rr = mnl_cb_run(rb.data(), n, seq, portid, cb, &t);
      if (rr <= MNL_CB_STOP) break;
    }
    if (!r.found || (r.type != RTN_UNICAST && r.type != RTN_LOCAL)) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("ifindex", Napi::Number::New(env, r.oif));
    o.Set("gateway", Napi::Number::New(env, r.gateway));
    o.Set("prefsrc", Napi::Number::New(env, r.prefsrc));
    o.Set("local", Napi::Boolean::New(env, r.type == RTN_LOCAL));
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    bool wasOpen = events_ != nullptr;
    Cleanup();
    if (wasOpen) Unref();
    return info.Env().Undefined();
  }

  void Cleanup() {
    poll_.Stop();
    if (events_) mnl_socket_close(events_);
    if (sync_) mnl_socket_close(sync_);
    events_ = nullptr;
    sync_ = nullptr;
  }

  static constexpr uint32_t kMaxEventsPerCall = 128;
  mnl_socket* events_ = nullptr;
  mnl_socket* sync_ = nullptr;
  uint32_t seq_ = 0;
  std::vector<char> buf_;
  Poller poll_;
  Napi::FunctionReference onEvents_;
  std::unique_ptr<Napi::AsyncContext> ctx_;
};

}  // namespace

Napi::Function InitRtnl(Napi::Env env) { return Rtnl::Init(env); }

}  // namespace sluice
