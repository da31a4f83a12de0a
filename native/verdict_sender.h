// NFQUEUE verdicts: which ids are still owed one, and the netlink messages that carry them.
//
// Per batch: verdicts for packets the receive loop could not hand to JavaScript (the queue's invalid
// verdict) first, then every packet's own verdict as an individual message (drop, mark, rewrite,
// queue, repeat), then one VERDICT_BATCH for the plain accepts, all in as few sendmsg calls as the
// socket takes. A VERDICT_BATCH covers every queued id up to its own, so it is only sent while no
// queued packet lower than it is still owed a verdict: nothing held, and no packet whose id the
// receive loop could not read (after one of those, never again: that packet stays queued until the
// kernel drops it at unbind).
#pragma once
#include <sys/uio.h>
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "batch_source.h"

namespace sluice {

class VerdictSender {
 public:
  struct Stats {
    double verdicts = 0, sendmsgCalls = 0, batchVerdicts = 0, errors = 0, lastErrno = 0;
  };

  void Init(int fd, uint16_t queue, uint32_t batch, int sndLimit);

  // The batch's verdicts: `invalid` ids get `invalidVerdict`; position i of `records` gets
  // verdicts[i] (V_HOLD: owed later), marks[i] when hasMark[i], the rewritten payload (slab +
  // records[i].offset, newLength[i] bytes) when newLength[i] > 0. Ids in `releasedNow` were
  // already decided by release() during the batch and are skipped.
  struct Out {
    uint32_t verdict, mark, newLength;
    bool hasMark;
  };
  void SendBatch(const uint8_t* slab, const std::vector<SlotRecord>& records, const std::vector<Out>& out,
                 uint32_t count, const std::vector<uint32_t>& invalid, uint32_t invalidVerdict,
                 const std::vector<uint32_t>& releasedNow);

  // One verdict now (a held packet, or a packet seen before the bind was acknowledged).
  void SendOne(uint32_t id, uint32_t verdict, int64_t mark, const uint8_t* payload, uint32_t plen);

  // Is a verdict for `id` owed later (held)? Forgets it when `take`.
  bool Owed(uint32_t id) const { return held_.count(id) != 0; }
  void Settle(uint32_t id) { held_.erase(id); }

  // A queued packet whose id is unknown: VERDICT_BATCH would accept it, so it is never sent again.
  void LostId() { batchAllowed_ = false; }

  size_t heldCount() const { return held_.size(); }
  const Stats& stats() const { return stats_; }

 private:
  void Append(uint16_t type, uint32_t id, uint32_t verdict, int64_t mark, const uint8_t* payload, uint32_t plen);
  void Flush();

  int fd_ = -1;
  uint16_t queue_ = 0;
  uint32_t seq_ = 0;
  int sndLimit_ = 65536;
  std::vector<uint8_t> hdrs_;   // one fixed-size header per message of the pending sendmsg
  size_t nHdrs_ = 0;
  std::vector<iovec> siov_;
  size_t sendBytes_ = 0;
  std::unordered_set<uint32_t> held_;
  bool batchAllowed_ = true;
  Stats stats_;
};

}  // namespace sluice
