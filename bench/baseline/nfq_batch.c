/*
 * Baseline (1): the fastest simple C consumer: recvmmsg up to BATCH datagrams, then ONE
 * NFQNL_MSG_VERDICT_BATCH accepting every id up to the highest one received. Same receive buffer,
 * queue length and copy range as sluice's defaults.
 *   nfq_batch QUEUE [RCVBUF_BYTES=8388608] [BATCH=64] [MAX_LEN=4096]
 * Prints "ready" when bound; on SIGTERM prints "received N batches B".
 */
#define _GNU_SOURCE
#include "common.h"

#define SLOT (0xffff + 1024)

int main(int argc, char **argv) {
  unsigned queue = argc > 1 ? atoi(argv[1]) : 0;
  int rcvbuf = argc > 2 ? atoi(argv[2]) : 8 << 20;
  unsigned batch = argc > 3 ? atoi(argv[3]) : 64;
  unsigned max_len = argc > 4 ? atoi(argv[4]) : 4096;
  struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) { perror("netlink"); return 1; }
  int fd = mnl_socket_get_fd(nl);
  set_rcvbuf(fd, rcvbuf);
  int err = bind_queue(nl, queue, max_len);
  if (err) { fprintf(stderr, "bind queue %u: %s\n", queue, strerror(err)); return 1; }
  install_signals();
  char *slab = malloc((size_t)SLOT * batch);
  struct mmsghdr *msgs = calloc(batch, sizeof *msgs);
  struct iovec *iov = calloc(batch, sizeof *iov);
  for (unsigned i = 0; i < batch; i++) {
    iov[i].iov_base = slab + (size_t)i * SLOT;
    iov[i].iov_len = SLOT;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  char vbuf[256];
  unsigned long received = 0, batches = 0;
  printf("ready\n");
  fflush(stdout);
  while (!stop_flag) {
    int n = recvmmsg(fd, msgs, batch, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR || errno == ENOBUFS) continue;
      perror("recvmmsg");
      break;
    }
    uint32_t max_id = 0;
    unsigned got = 0;
    for (int i = 0; i < n; i++) {
      struct nlmsghdr *nlh = (struct nlmsghdr *)iov[i].iov_base;
      int len = msgs[i].msg_len;
      for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
        if (nlh->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) continue;
        struct nlattr *a;
        mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
          if (mnl_attr_get_type(a) == NFQA_PACKET_HDR) {
            struct nfqnl_msg_packet_hdr *h = mnl_attr_get_payload(a);
            uint32_t id = ntohl(h->packet_id);
            if (id > max_id) max_id = id;
            got++;
            break;
          }
        }
      }
    }
    if (!got) continue;
    received += got;
    batches++;
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(vbuf);
    nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT_BATCH;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof *g);
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(queue);
    struct nfqnl_msg_verdict_hdr vh = {htonl(NF_ACCEPT), htonl(max_id)};
    mnl_attr_put(nlh, NFQA_VERDICT_HDR, sizeof vh, &vh);
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) perror("sendto");
  }
  printf("received %lu batches %lu\n", received, batches);
  mnl_socket_close(nl);
  return 0;
}
