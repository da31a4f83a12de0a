/*
 * Baseline (2): the classic per-packet loop of libnetfilter_queue's examples/nf-queue.c: receive one
 * datagram, parse it with nfq_nlmsg_parse, send one NFQNL_MSG_VERDICT (nfq_nlmsg_verdict_put), repeat.
 * Same receive buffer and queue length as sluice's defaults.
 *   nfq_classic QUEUE [RCVBUF_BYTES=8388608] [MAX_LEN=4096]
 */
#include "common.h"
#include <libnetfilter_queue/libnetfilter_queue.h>

static unsigned long received;
static unsigned queue_num;

static int queue_cb(const struct nlmsghdr *nlh, void *data) {
  struct mnl_socket *nl = data;
  struct nlattr *attr[NFQA_MAX + 1] = {0};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) return MNL_CB_OK;
  struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
  uint32_t id = ntohl(ph->packet_id);
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *v = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT, queue_num);
  nfq_nlmsg_verdict_put(v, id, NF_ACCEPT);
  if (mnl_socket_sendto(nl, v, v->nlmsg_len) < 0) perror("sendto");
  received++;
  return MNL_CB_OK;
}

int main(int argc, char **argv) {
  queue_num = argc > 1 ? atoi(argv[1]) : 0;
  int rcvbuf = argc > 2 ? atoi(argv[2]) : 8 << 20;
  unsigned max_len = argc > 3 ? atoi(argv[3]) : 4096;
  struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) { perror("netlink"); return 1; }
  set_rcvbuf(mnl_socket_get_fd(nl), rcvbuf);
  int err = bind_queue(nl, queue_num, max_len);
  if (err) { fprintf(stderr, "bind queue %u: %s\n", queue_num, strerror(err)); return 1; }
  install_signals();
  size_t sz = 0xffff + (MNL_SOCKET_BUFFER_SIZE / 2);
  char *buf = malloc(sz);
  unsigned portid = mnl_socket_get_portid(nl);
  printf("ready\n");
  fflush(stdout);
  while (!stop_flag) {
    int n = mnl_socket_recvfrom(nl, buf, sz);
    if (n < 0) {
      if (errno == EINTR || errno == ENOBUFS) continue;
      perror("recv");
      break;
    }
    mnl_cb_run(buf, n, 0, portid, queue_cb, nl);
  }
  printf("received %lu\n", received);
  mnl_socket_close(nl);
  return 0;
}
