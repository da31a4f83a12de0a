/*
 * Where a spinning thread's stops go: a loop that reads CLOCK_MONOTONIC and its own
 * CLOCK_THREAD_CPUTIME_ID, and for every step of the wall clock over a threshold prints how much
 * of it the kernel charged to the thread (its CPU time: with CONFIG_IRQ_TIME_ACCOUNTING off, that
 * includes interrupts and softirqs taken on its CPU), how much it waited in the run queue
 * (/proc/thread-self/schedstat, exact at each switch), and the rest: time the guest kernel did not
 * run at all on that CPU. With CONFIG_PARAVIRT_TIME_ACCOUNTING the task clock leaves out the
 * hypervisor's steal, so the rest is steal, to the ns (no 10 ms ticks as in /proc/stat).
 *   cc -O2 -Wall -o /tmp/steal-spin bench/steal-spin.c && chrt -f 20 /tmp/steal-spin SECONDS [THRESHOLD_US]
 * SCHED_FIFO: a 0.2 ms sleep every 100 ms keeps it clear of real-time throttling (0.95 s a second),
 * but a thread that holds a CPU starves SCHED_OTHER there, and the kernel's fair server (a deadline
 * entity, 50 ms a second) then runs them ahead of it: ~50 ms of run-queue wait once a second, the
 * spinner's own doing (the stall bench's threads sleep every millisecond and do not cause it).
 * Output: one line per stop, then a summary; CLOCK_MONOTONIC ms, so it lines up with the stall bench.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static long long ns(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long run_delay(int fd) {
  char b[128];
  ssize_t n = pread(fd, b, sizeof b - 1, 0);
  if (n <= 0) return 0;
  b[n] = 0;
  long long on, wait;
  return sscanf(b, "%lld %lld", &on, &wait) == 2 ? wait : 0;
}

/* Total steal of all CPUs from /proc/stat, in ms (10 ms ticks). */
static long long stat_steal_ms(void) {
  FILE *f = fopen("/proc/stat", "r");
  long long v[8] = {0};
  if (!f) return -1;
  if (fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8) v[7] = -1;
  fclose(f);
  return v[7] * 10;
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 10;
  long long thr = (argc > 2 ? atoll(argv[2]) : 1000) * 1000LL;
  int fd = open("/proc/thread-self/schedstat", O_RDONLY);
  long long steal0 = stat_steal_ms();
  long long start = ns(CLOCK_MONOTONIC), end = start + (long long)(secs * 1e9), nap = start + 100000000LL;
  long long w = start, c = ns(CLOCK_THREAD_CPUTIME_ID), d = run_delay(fd);
  int cpu = sched_getcpu();
  long long stops = 0, over5 = 0, over5_mostly_steal = 0, sum_gap = 0, sum_cpu = 0, sum_wait = 0;
  while (w < end) {
    long long w2 = ns(CLOCK_MONOTONIC), c2 = ns(CLOCK_THREAD_CPUTIME_ID);
    if (w2 - w > thr) {
      long long d2 = run_delay(fd), gap = w2 - w, oncpu = c2 - c, wait = d2 - d, rest = gap - oncpu - wait;
      int cpu2 = sched_getcpu();
      stops++; sum_gap += gap; sum_cpu += oncpu; sum_wait += wait;
      if (gap > 5000000) { over5++; if (rest > gap / 2) over5_mostly_steal++; }
      printf("stop at %.3f ms: %.3f ms = on-CPU %.3f + run-queue wait %.3f + not run by the guest (steal) %.3f; cpu %d->%d\n",
             w2 / 1e6, gap / 1e6, oncpu / 1e6, wait / 1e6, rest / 1e6, cpu, cpu2);
      fflush(stdout);
      d = d2;
      cpu = cpu2;
      c2 = ns(CLOCK_THREAD_CPUTIME_ID);
      w2 = ns(CLOCK_MONOTONIC);
    }
    if (w2 > nap) {
      struct timespec s = {0, 200000};
      nanosleep(&s, 0);
      nap = w2 + 100000000LL;
      d = run_delay(fd);
      cpu = sched_getcpu();
      c2 = ns(CLOCK_THREAD_CPUTIME_ID);
      w2 = ns(CLOCK_MONOTONIC);
    }
    w = w2;
    c = c2;
  }
  printf("spun %.1f s: %lld stops over %.3f ms totalling %.3f ms (on-CPU %.3f, run-queue wait %.3f, steal %.3f); "
         "%lld over 5 ms, %lld of them mostly steal; /proc/stat steal (all CPUs) went up %lld ms meanwhile\n",
         (w - start) / 1e9, stops, thr / 1e6, sum_gap / 1e6, sum_cpu / 1e6, sum_wait / 1e6, (sum_gap - sum_cpu - sum_wait) / 1e6,
         over5, over5_mostly_steal, stat_steal_ms() - steal0);
  return 0;
}
