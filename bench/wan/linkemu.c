/*
 * linkemu: a userspace WAN link between two TUN devices (tc netem is not available on our machines).
 *
 *   linkemu --tun-a NAME --tun-b NAME [--seed N] [--rate-bps N] [--delay-us N] [--loss P] [--queue-us N]
 *
 * Creates the two TUN devices (IFF_TUN | IFF_NO_PI) in the namespace it runs in and prints
 * {"type":"ready"} on stdout; the caller then moves each device into its own network namespace (the
 * file descriptors stay attached) and configures addresses. Every IP packet read from one device is
 * written to the other after, per direction (a2b = read from A, written to B):
 *   1. a bottleneck of rate_bps with a drop-tail queue holding queue_us of transmission at that rate
 *      (a packet that would wait longer is dropped: "droppedQueue");
 *   2. random loss with probability `loss` (seeded xorshift PRNG per direction), applied after the
 *      bottleneck, so lost packets used link capacity and the deliverable rate is rate x (1 - loss);
 *   3. a constant one-way delay of delay_us.
 * Packets wait in a byte ring per direction (no per-packet malloc); one thread, a ppoll() loop whose
 * timeout is the next release time (CLOCK_MONOTONIC, ns).
 *
 * Commands on stdin, one per line; each gets exactly one JSON line on stdout carrying its id:
 *   set ID a2b|b2a|both rate_bps=N delay_us=N loss=P queue_us=N   (any subset of the keys)
 *   counters ID          -> {"type":"counters","id":ID,"a2b":{...},"b2a":{...}}
 *   reset ID             -> zero the counters
 *   quit ID
 * SIGUSR1 prints the counters (id 0); SIGTERM/SIGINT and EOF on stdin print them and exit, so the
 * emulator never outlives the harness that started it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_PACKET 65536
#define RECORD_ALIGN 16
#define WRAP_MARK UINT32_MAX
/* Packets read per device per wake-up: bounded so one busy direction cannot starve the other. */
#define READ_BATCH 64
/* Release packets due within this much of now: fewer wake-ups, an error far below any delay we set. */
#define RELEASE_EARLY_NS 20000ULL
#define RING_MAX_BYTES (1ULL << 30)

struct params {
  uint64_t rate_bps; /* 0: unlimited */
  uint64_t delay_ns;
  double loss;
  uint64_t queue_ns; /* 0: no limit other than the ring */
};

struct counters {
  uint64_t packets_in, bytes_in;
  uint64_t packets_out, bytes_out;
  uint64_t loss_trials; /* packets that reached the loss stage */
  uint64_t dropped_loss, bytes_lost;
  uint64_t dropped_queue;
  uint64_t dropped_ring; /* the ring was full: should stay 0, sized from the parameters */
  uint64_t write_errors;
  uint64_t max_queue_ns;
};

struct record {
  uint64_t release_ns;
  uint32_t len;
  uint32_t pad;
};

struct direction {
  const char *name;
  int in_fd, out_fd;
  struct params p;
  struct counters c;
  uint64_t link_free_ns; /* when the bottleneck finishes the last accepted packet */
  uint64_t rng;
  uint8_t *ring;
  size_t cap, head, tail, count;
};

static volatile sig_atomic_t want_counters = 0, want_exit = 0;
static void on_signal(int sig) {
  if (sig == SIGUSR1) want_counters = 1;
  else want_exit = 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: uniform in [0, 1). */
static double rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

static uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x ? x : 1;
}

static size_t record_size(uint32_t len) { return (sizeof(struct record) + len + RECORD_ALIGN - 1) & ~(size_t)(RECORD_ALIGN - 1); }

/* Bytes the ring needs: twice what the link holds in its queue and delay line, plus slack. */
static size_t ring_bytes_for(const struct params *p) {
  double rate = p->rate_bps ? (double)p->rate_bps : 2e9;
  double seconds = (double)(p->delay_ns + p->queue_ns) / 1e9 + 0.05;
  double bytes = 2.0 * rate / 8.0 * seconds + 4.0 * 1024 * 1024;
  if (bytes > (double)RING_MAX_BYTES) bytes = (double)RING_MAX_BYTES;
  return ((size_t)bytes + RECORD_ALIGN - 1) & ~(size_t)(RECORD_ALIGN - 1);
}

static int ring_resize(struct direction *d, size_t cap) {
  uint8_t *ring = malloc(cap);
  if (!ring) return -1;
  free(d->ring);
  d->ring = ring;
  d->cap = cap;
  d->head = d->tail = d->count = 0;
  return 0;
}

/* Where a record of `size` bytes goes, or NULL when the ring is full. */
static uint8_t *ring_reserve(struct direction *d, size_t size) {
  if (d->count == 0) {
    d->head = d->tail = 0;
    return size <= d->cap ? d->ring : NULL;
  }
  if (d->tail > d->head) {
    if (size <= d->cap - d->tail) return d->ring + d->tail;
    if (size <= d->head) {
      ((struct record *)(d->ring + d->tail))->len = WRAP_MARK;
      d->tail = 0;
      return d->ring;
    }
    return NULL;
  }
  if (d->tail < d->head && size <= d->head - d->tail) return d->ring + d->tail;
  return NULL; /* tail == head with records in it: full */
}

static struct record *ring_front(struct direction *d) {
  if (d->count == 0) return NULL;
  struct record *r = (struct record *)(d->ring + d->head);
  if (r->len == WRAP_MARK) {
    d->head = 0;
    r = (struct record *)d->ring;
  }
  return r;
}

static void ring_pop(struct direction *d, struct record *r) {
  d->head += record_size(r->len);
  if (d->head == d->cap) d->head = 0;
  d->count -= 1;
  if (d->count == 0) d->head = d->tail = 0;
}

static void enqueue(struct direction *d, const uint8_t *packet, uint32_t len, uint64_t now) {
  d->c.packets_in += 1;
  d->c.bytes_in += len;
  uint64_t depart = now;
  if (d->p.rate_bps > 0) {
    uint64_t tx_ns = (uint64_t)len * 8ULL * 1000000000ULL / d->p.rate_bps;
    uint64_t start = d->link_free_ns > now ? d->link_free_ns : now;
    uint64_t wait_ns = start - now;
    if (d->p.queue_ns > 0 && wait_ns + tx_ns > d->p.queue_ns) {
      d->c.dropped_queue += 1;
      return;
    }
    if (wait_ns > d->c.max_queue_ns) d->c.max_queue_ns = wait_ns;
    d->link_free_ns = start + tx_ns;
    depart = d->link_free_ns;
  }
  d->c.loss_trials += 1;
  if (d->p.loss > 0 && rng_next(&d->rng) < d->p.loss) {
    d->c.dropped_loss += 1;
    d->c.bytes_lost += len;
    return;
  }
  size_t size = record_size(len);
  uint8_t *at = ring_reserve(d, size);
  if (!at) {
    d->c.dropped_ring += 1;
    return;
  }
  struct record *r = (struct record *)at;
  r->release_ns = depart + d->p.delay_ns;
  r->len = len;
  memcpy(at + sizeof(struct record), packet, len);
  d->tail = (size_t)(at - d->ring) + size;
  if (d->tail == d->cap) d->tail = 0;
  d->count += 1;
}

/* Writes every packet due by `now`; returns the next release time (UINT64_MAX when empty). */
static uint64_t release(struct direction *d, uint64_t now) {
  struct record *r;
  while ((r = ring_front(d)) != NULL) {
    if (r->release_ns > now + RELEASE_EARLY_NS) return r->release_ns;
    ssize_t n = write(d->out_fd, (uint8_t *)r + sizeof(struct record), r->len);
    if (n == (ssize_t)r->len) {
      d->c.packets_out += 1;
      d->c.bytes_out += r->len;
    } else {
      d->c.write_errors += 1;
    }
    ring_pop(d, r);
  }
  return UINT64_MAX;
}

static int read_batch(struct direction *d, uint8_t *buf) {
  for (int i = 0; i < READ_BATCH; i++) {
    ssize_t n = read(d->in_fd, buf, MAX_PACKET);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
      return -1;
    }
    if (n == 0) return 0;
    enqueue(d, buf, (uint32_t)n, now_ns());
  }
  return 0;
}

static void print_dir(const struct direction *d) {
  const struct counters *c = &d->c;
  printf("\"%s\":{\"packetsIn\":%llu,\"bytesIn\":%llu,\"packetsOut\":%llu,\"bytesOut\":%llu,\"lossTrials\":%llu,"
         "\"droppedLoss\":%llu,\"bytesLost\":%llu,\"droppedQueue\":%llu,\"droppedRing\":%llu,\"writeErrors\":%llu,"
         "\"maxQueueUs\":%llu,\"queuedPackets\":%zu}",
         d->name, (unsigned long long)c->packets_in, (unsigned long long)c->bytes_in, (unsigned long long)c->packets_out,
         (unsigned long long)c->bytes_out, (unsigned long long)c->loss_trials, (unsigned long long)c->dropped_loss,
         (unsigned long long)c->bytes_lost, (unsigned long long)c->dropped_queue, (unsigned long long)c->dropped_ring,
         (unsigned long long)c->write_errors, (unsigned long long)(c->max_queue_ns / 1000), d->count);
}

static void print_counters(struct direction *dirs, long id) {
  printf("{\"type\":\"counters\",\"id\":%ld,\"timeNs\":%llu,", id, (unsigned long long)now_ns());
  print_dir(&dirs[0]);
  printf(",");
  print_dir(&dirs[1]);
  printf("}\n");
  fflush(stdout);
}

static void reply(const char *type, long id, const char *detail) {
  printf("{\"type\":\"%s\",\"id\":%ld,\"detail\":\"%s\"}\n", type, id, detail);
  fflush(stdout);
}

static int apply_param(struct params *p, const char *key, const char *value) {
  char *end;
  if (strcmp(key, "loss") == 0) {
    double v = strtod(value, &end);
    if (*end || v < 0 || v > 1) return -1;
    p->loss = v;
    return 0;
  }
  unsigned long long v = strtoull(value, &end, 10);
  if (*end) return -1;
  if (strcmp(key, "rate_bps") == 0) p->rate_bps = v;
  else if (strcmp(key, "delay_us") == 0) p->delay_ns = v * 1000ULL;
  else if (strcmp(key, "queue_us") == 0) p->queue_ns = v * 1000ULL;
  else return -1;
  return 0;
}

/* A queue shorter than two full packets at the rate would pass nothing. */
static void normalize(struct params *p) {
  if (p->rate_bps > 0 && p->queue_ns > 0) {
    uint64_t two_packets = 2ULL * 1500ULL * 8ULL * 1000000000ULL / p->rate_bps;
    if (p->queue_ns < two_packets) p->queue_ns = two_packets;
  }
}

static int configure(struct direction *d, const struct params *p) {
  d->p = *p;
  normalize(&d->p);
  d->link_free_ns = 0;
  size_t need = ring_bytes_for(&d->p);
  if (need > d->cap) {
    /* Packets still in flight are dropped with the old ring (the harness reconfigures when idle). */
    d->c.dropped_ring += d->count;
    if (ring_resize(d, need) != 0) return -1;
  }
  return 0;
}

static void handle_command(struct direction *dirs, char *line) {
  char *save = NULL;
  char *verb = strtok_r(line, " \t", &save);
  char *id_text = verb ? strtok_r(NULL, " \t", &save) : NULL;
  long id = id_text ? strtol(id_text, NULL, 10) : -1;
  if (!verb) return;
  if (strcmp(verb, "counters") == 0) {
    print_counters(dirs, id);
  } else if (strcmp(verb, "reset") == 0) {
    memset(&dirs[0].c, 0, sizeof dirs[0].c);
    memset(&dirs[1].c, 0, sizeof dirs[1].c);
    reply("ok", id, "reset");
  } else if (strcmp(verb, "quit") == 0) {
    reply("ok", id, "quit");
    want_exit = 1;
  } else if (strcmp(verb, "set") == 0) {
    char *which = strtok_r(NULL, " \t", &save);
    int a = which && (strcmp(which, "a2b") == 0 || strcmp(which, "both") == 0);
    int b = which && (strcmp(which, "b2a") == 0 || strcmp(which, "both") == 0);
    if (!a && !b) { reply("error", id, "set: name a2b, b2a or both"); return; }
    struct params pa = dirs[0].p, pb = dirs[1].p;
    char *kv;
    while ((kv = strtok_r(NULL, " \t", &save)) != NULL) {
      char *eq = strchr(kv, '=');
      if (!eq) { reply("error", id, "set: key=value expected"); return; }
      *eq = '\0';
      if ((a && apply_param(&pa, kv, eq + 1) != 0) || (b && apply_param(&pb, kv, eq + 1) != 0)) { reply("error", id, "set: bad key or value"); return; }
    }
    if ((a && configure(&dirs[0], &pa) != 0) || (b && configure(&dirs[1], &pb) != 0)) { reply("error", id, "set: out of memory"); return; }
    reply("ok", id, "set");
  } else {
    reply("error", id, "unknown command");
  }
}

static int open_tun(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void usage(void) {
  fprintf(stderr, "usage: linkemu --tun-a NAME --tun-b NAME [--seed N] [--rate-bps N] [--delay-us N] [--loss P] [--queue-us N]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *tun_a = NULL, *tun_b = NULL;
  uint64_t seed = 1;
  struct params p = {0, 0, 0.0, 0};
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage();
    const char *k = argv[i], *v = argv[++i];
    if (strcmp(k, "--tun-a") == 0) tun_a = v;
    else if (strcmp(k, "--tun-b") == 0) tun_b = v;
    else if (strcmp(k, "--seed") == 0) seed = strtoull(v, NULL, 10);
    else if (strcmp(k, "--rate-bps") == 0) { if (apply_param(&p, "rate_bps", v)) usage(); }
    else if (strcmp(k, "--delay-us") == 0) { if (apply_param(&p, "delay_us", v)) usage(); }
    else if (strcmp(k, "--loss") == 0) { if (apply_param(&p, "loss", v)) usage(); }
    else if (strcmp(k, "--queue-us") == 0) { if (apply_param(&p, "queue_us", v)) usage(); }
    else usage();
  }
  if (!tun_a || !tun_b) usage();

  /* Fine-grained timers, and ahead of the Node processes sharing our two cores, so a busy machine delays
   * packets as little as possible: real-time round-robin when allowed (the kernel's RT throttling still
   * leaves others 5 %; we sleep in ppoll whenever nothing is due), else a high nice level. */
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  struct sched_param sp = {.sched_priority = 10};
  const char *scheduling = "SCHED_RR";
  if (sched_setscheduler(0, SCHED_RR, &sp) != 0) {
    setpriority(PRIO_PROCESS, 0, -10);
    scheduling = "nice -10";
  }

  int fa = open_tun(tun_a), fb = open_tun(tun_b);
  if (fa < 0 || fb < 0) {
    fprintf(stderr, "linkemu: cannot create TUN devices %s/%s: %s\n", tun_a, tun_b, strerror(errno));
    return 1;
  }
  struct direction dirs[2] = {
      {.name = "a2b", .in_fd = fa, .out_fd = fb, .rng = splitmix(seed * 2 + 1)},
      {.name = "b2a", .in_fd = fb, .out_fd = fa, .rng = splitmix(seed * 2 + 2)},
  };
  if (configure(&dirs[0], &p) != 0 || configure(&dirs[1], &p) != 0) {
    fprintf(stderr, "linkemu: out of memory\n");
    return 1;
  }

  /* Signals are delivered only inside ppoll, so handlers never interrupt the packet path. */
  sigset_t blocked, during_poll;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR1);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  sigprocmask(SIG_BLOCK, &blocked, &during_poll);
  sigdelset(&during_poll, SIGUSR1);
  sigdelset(&during_poll, SIGTERM);
  sigdelset(&during_poll, SIGINT);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
  printf("{\"type\":\"ready\",\"id\":0,\"detail\":\"%s %s, %s\"}\n", tun_a, tun_b, scheduling);
  fflush(stdout);

  static uint8_t buf[MAX_PACKET];
  char line[1024];
  size_t line_len = 0;
  struct pollfd fds[3] = {{.fd = fa, .events = POLLIN}, {.fd = fb, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
  int stdin_open = 1;
  while (!want_exit) {
    uint64_t now = now_ns();
    uint64_t next_a = release(&dirs[0], now), next_b = release(&dirs[1], now);
    uint64_t next = next_a < next_b ? next_a : next_b;
    struct timespec timeout, *tp = NULL;
    if (next != UINT64_MAX) {
      uint64_t wait = next > now ? next - now : 0;
      timeout.tv_sec = (time_t)(wait / 1000000000ULL);
      timeout.tv_nsec = (long)(wait % 1000000000ULL);
      tp = &timeout;
    }
    fds[2].fd = stdin_open ? STDIN_FILENO : -1;
    int ready = ppoll(fds, 3, tp, &during_poll);
    if (want_counters) {
      want_counters = 0;
      print_counters(dirs, 0);
    }
    if (ready < 0) {
      if (errno == EINTR) continue;
      perror("linkemu: ppoll");
      break;
    }
    if (fds[0].revents & POLLIN && read_batch(&dirs[0], buf) < 0) break;
    if (fds[1].revents & POLLIN && read_batch(&dirs[1], buf) < 0) break;
    if ((fds[0].revents | fds[1].revents) & (POLLERR | POLLHUP | POLLNVAL)) {
      fprintf(stderr, "linkemu: a TUN device went away\n");
      break;
    }
    if (stdin_open && fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      for (;;) {
        ssize_t n = read(STDIN_FILENO, line + line_len, sizeof line - 1 - line_len);
        if (n == 0) {
          /* The harness is gone: so are we. */
          stdin_open = 0;
          want_exit = 1;
          break;
        }
        if (n < 0) break;
        line_len += (size_t)n;
        char *nl;
        while ((nl = memchr(line, '\n', line_len)) != NULL) {
          *nl = '\0';
          handle_command(dirs, line);
          size_t used = (size_t)(nl - line) + 1;
          memmove(line, nl + 1, line_len - used);
          line_len -= used;
        }
        if (line_len == sizeof line - 1) line_len = 0; /* an overlong line: drop it */
      }
    }
  }
  print_counters(dirs, 0);
  return 0;
}
