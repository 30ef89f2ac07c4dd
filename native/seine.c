/*
 * seine's native addon: the packet I/O Node cannot do itself — TAP devices with a virtio-net header,
 * batched UDP (recvmmsg/sendmmsg, UDP_SEGMENT, UDP_GRO) and raw IP sockets, each created inside a
 * network namespace, plus libuv readiness for their file descriptors.
 *
 * It moves bytes and metadata and decides nothing: no packet is parsed here, and every kernel answer
 * goes back to JavaScript as it came (a length, a gso_size, an errno). Frames live in one caller-given
 * slab (PacketPool.slab): frame i is slab[offsets[i], offsets[i] + caps[i]) — every window is checked
 * against the slab before the first system call, so a bad offset throws and nothing is written.
 *
 * Conventions, shared by every call:
 *  - wrong argument types throw TypeError (code ERR_INVALID_ARG_TYPE), out-of-range values RangeError
 *    (ERR_OUT_OF_RANGE); a failed system call throws an Error naming the call, the object, the netns,
 *    the step and the errno name ("tapOpen tap0 in netns x: TUNSETIFF: EBUSY"; .code = "EBUSY",
 *    .errno = -16, .syscall = "TUNSETIFF").
 *  - a batch stops at EAGAIN and returns how many it did. An error on the first item is reported (a
 *    throw, or -errno for the two socket send calls); an error after some items ends the batch short,
 *    and the next call meets it on its first item.
 *  - a socket receive reports a datagram's full length (MSG_TRUNC): one larger than its cap was truncated
 *    to the cap. A TAP truncates silently (read() returns the cap), so its caps must fit the largest frame.
 *
 * Namespaces: setns(CLONE_NEWNET) moves only the calling thread, so each call that creates a file
 * descriptor in a namespace switches this thread there, creates it, and always switches back. A socket
 * or TAP stays in the namespace it was created in; everything after creation needs no switch.
 */
#include <node_api.h>
#include <uv.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Node's own OpenSSL (include/node/openssl): see the AEAD section. */
#include <openssl/crypto.h>
#include <openssl/evp.h>

/* /usr/include from an older kernel may lack these (Linux 6.2 added USO to TUN). */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/** sizeof(struct virtio_net_hdr_v1): what the TAP puts in front of every frame with IFF_VNET_HDR. */
#define VNET_HDR_LEN 12
/** Bytes per peer address in the caller's `addrs` array (an IPv4 address uses the first 4). */
#define ADDR_LEN 16
/** Messages per recvmmsg/sendmmsg call: the headers live on the stack; a larger batch loops. */
#define CHUNK 64
/** Socket buffer size asked for; the kernel may give less (rmem_max / wmem_max) without an error. */
#define SOCK_BUF (4 << 20)

/* ---------------------------------------------------------------------------------------------- */
/* Errors                                                                                           */

static const char *errno_name(int err, char *buf, size_t cap) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(err);
  if (n != NULL) return n;
#endif
  snprintf(buf, cap, "errno %d", err);
  return buf;
}

/** Throws "fn obj[ in netns ns]: [step: ]ENAME" with .code, .errno (negative, as Node's) and .syscall. */
static void throw_errno(napi_env env, int err, const char *fn, const char *obj, const char *netns,
                        const char *step) {
  char nbuf[24], msg[512];
  const char *name = errno_name(err, nbuf, sizeof nbuf);
  snprintf(msg, sizeof msg, "%s %s%s%s: %s%s%s", fn, obj, netns ? " in netns " : "", netns ? netns : "",
           step ? step : "", step ? ": " : "", name);
  napi_value m, code, e, no, sc;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, m, &e);
  napi_create_int32(env, -err, &no);
  napi_set_named_property(env, e, "errno", no);
  napi_create_string_utf8(env, step ? step : fn, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, e, "syscall", sc);
  napi_throw(env, e);
}

static void throw_type(napi_env env, const char *fn, const char *what, const char *expected) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s must be %s", fn, what, expected);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

static void throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
}

/** For a failed N-API call on values already checked (out of memory, a pending exception). */
#define NAPI_OK(call)                                                                              \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      bool pending_ = false;                                                                       \
      napi_is_exception_pending(env, &pending_);                                                   \
      if (!pending_) napi_throw_error(env, NULL, "seine native: " #call " failed");                \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

/* ---------------------------------------------------------------------------------------------- */
/* Arguments                                                                                        */

static bool get_args(napi_env env, napi_callback_info info, napi_value *argv, size_t n) {
  size_t argc = n;
  /* Missing arguments come back as undefined, which the type checks below refuse. */
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok;
}

static bool is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_undefined || t == napi_null);
}

/** An integral number in [lo, hi]. */
static bool arg_int(napi_env env, napi_value v, const char *fn, const char *what, int64_t lo, int64_t hi,
                    int64_t *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok) {
    throw_type(env, fn, what, "a number");
    return false;
  }
  if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s must be an integer in [%lld, %lld], got %g", fn, what, (long long)lo,
             (long long)hi, d);
    throw_range(env, msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool arg_fd(napi_env env, napi_value v, const char *fn, int *fd) {
  int64_t x;
  if (!arg_int(env, v, fn, "fd", 0, INT_MAX, &x)) return false;
  *fd = (int)x;
  return true;
}

static bool arg_bool(napi_env env, napi_value v, const char *fn, const char *what, bool *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean || napi_get_value_bool(env, v, out) != napi_ok) {
    throw_type(env, fn, what, "a boolean");
    return false;
  }
  return true;
}

/** A string without NUL that fits `cap` bytes with its terminator. */
static bool arg_str(napi_env env, napi_value v, const char *fn, const char *what, char *buf, size_t cap) {
  napi_valuetype t;
  size_t len;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string ||
      napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    throw_type(env, fn, what, "a string");
    return false;
  }
  if (len >= cap) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s is %zu bytes, at most %zu allowed", fn, what, len, cap - 1);
    throw_range(env, msg);
    return false;
  }
  napi_get_value_string_utf8(env, v, buf, cap, &len);
  if (strlen(buf) != len) {
    throw_type(env, fn, what, "a string without NUL characters");
    return false;
  }
  return true;
}

/** A netns name or path, or null/undefined for the current namespace (*ns = NULL then). */
static bool arg_netns(napi_env env, napi_value v, const char *fn, char *buf, size_t cap, const char **ns) {
  *ns = NULL;
  if (is_nullish(env, v)) return true;
  if (!arg_str(env, v, fn, "netns", buf, cap)) return false;
  *ns = buf;
  return true;
}

static bool arg_typed(napi_env env, napi_value v, const char *fn, const char *what, napi_typedarray_type want,
                      const char *expected, void **data, size_t *len) {
  bool is;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok || type != want) {
    throw_type(env, fn, what, expected);
    return false;
  }
  return true;
}

static bool arg_u8(napi_env env, napi_value v, const char *fn, const char *what, uint8_t **data, size_t *len) {
  return arg_typed(env, v, fn, what, napi_uint8_array, "a Uint8Array", (void **)data, len);
}

static bool arg_i32(napi_env env, napi_value v, const char *fn, const char *what, int32_t **data, size_t *len) {
  return arg_typed(env, v, fn, what, napi_int32_array, "an Int32Array", (void **)data, len);
}

/** An array argument must hold at least `need` elements. */
static bool check_len(napi_env env, const char *fn, const char *what, size_t have, uint64_t need) {
  if (have >= need) return true;
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s has %zu elements, %llu needed", fn, what, have, (unsigned long long)need);
  throw_range(env, msg);
  return false;
}

/** Every window [off[i], off[i] + len[i]) for i < n lies inside the slab. */
static bool check_windows(napi_env env, const char *fn, const char *lenname, size_t slab_len, const int32_t *off,
                          const int32_t *len, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    if (off[i] < 0 || len[i] < 0 || (uint64_t)off[i] + (uint64_t)len[i] > slab_len) {
      char msg[256];
      snprintf(msg, sizeof msg, "%s: frame %u (offset %d, %s %d) is outside the slab of %zu bytes", fn, i,
               off[i], lenname, len[i], slab_len);
      throw_range(env, msg);
      return false;
    }
  }
  return true;
}

/** A batch's arrays, read and checked once. */
typedef struct {
  int fd;
  uint8_t *slab;
  int32_t *off;
  int32_t *len; /* caps for a receive, lengths for a send */
  int32_t *out; /* received lengths (receive only) */
  uint8_t *addrs;
  int32_t *ports;
  int32_t *segs;
  uint32_t n;
} batch_t;

/**
 * Reads fd, slab, offsets, caps|lens, [lens out], [addrs], [ports], [segs], count from argv in that order
 * (the parts a call has) and checks every length and window.
 */
static bool arg_batch(napi_env env, napi_value *argv, const char *fn, bool recv, bool addrs, bool ports,
                      bool segs, batch_t *b) {
  size_t slab_len, off_len, len_len, out_len = 0, addr_len = 0, port_len = 0, seg_len = 0;
  int64_t n;
  size_t k = 0;
  memset(b, 0, sizeof *b);
  if (!arg_fd(env, argv[k++], fn, &b->fd)) return false;
  if (!arg_u8(env, argv[k++], fn, "slab", &b->slab, &slab_len)) return false;
  if (!arg_i32(env, argv[k++], fn, "offsets", &b->off, &off_len)) return false;
  if (!arg_i32(env, argv[k++], fn, recv ? "caps" : "lens", &b->len, &len_len)) return false;
  if (recv && !arg_i32(env, argv[k++], fn, "lens", &b->out, &out_len)) return false;
  if (addrs && !arg_u8(env, argv[k++], fn, "addrs", &b->addrs, &addr_len)) return false;
  if (ports && !arg_i32(env, argv[k++], fn, "ports", &b->ports, &port_len)) return false;
  if (segs && !arg_i32(env, argv[k++], fn, "segs", &b->segs, &seg_len)) return false;
  if (!arg_int(env, argv[k], fn, recv ? "max" : "count", 0, INT32_MAX, &n)) return false;
  b->n = (uint32_t)n;
  if (!check_len(env, fn, "offsets", off_len, n) || !check_len(env, fn, recv ? "caps" : "lens", len_len, n) ||
      (recv && !check_len(env, fn, "lens", out_len, n)) ||
      (addrs && !check_len(env, fn, "addrs", addr_len, (uint64_t)n * ADDR_LEN)) ||
      (ports && !check_len(env, fn, "ports", port_len, n)) || (segs && !check_len(env, fn, "segs", seg_len, n)))
    return false;
  if (!check_windows(env, fn, recv ? "cap" : "len", slab_len, b->off, b->len, b->n)) return false;
  if (!recv) {
    for (uint32_t i = 0; i < b->n; i++) {
      if ((ports && (b->ports[i] < 0 || b->ports[i] > 65535)) || (segs && (b->segs[i] < 0 || b->segs[i] > 65535))) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: message %u has port %d / segment size %d outside [0, 65535]", fn, i,
                 ports ? b->ports[i] : 0, segs ? b->segs[i] : 0);
        throw_range(env, msg);
        return false;
      }
    }
  }
  return true;
}

/* ---------------------------------------------------------------------------------------------- */
/* Network namespaces                                                                               */

/**
 * Moves this thread into `netns` (a name under /var/run/netns, or a path such as /proc/PID/ns/net;
 * NULL = stay). On success *saved is the thread's own namespace (or -1) for ns_leave; on failure
 * nothing changed and the errno is returned with the failing step.
 */
static int ns_enter(const char *netns, int *saved, const char **step) {
  char path[PATH_MAX];
  *saved = -1;
  if (netns == NULL) return 0;
  if (netns[0] == '/')
    snprintf(path, sizeof path, "%s", netns);
  else
    snprintf(path, sizeof path, "/var/run/netns/%s", netns);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    *step = "open netns";
    return errno;
  }
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int err = errno;
    close(target);
    *step = "open /proc/thread-self/ns/net";
    return err;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int err = errno;
    close(target);
    close(self);
    *step = "setns";
    return err;
  }
  close(target);
  *saved = self;
  return 0;
}

/** Moves this thread back. Failing to is not recoverable: every later socket would land in the wrong place. */
static void ns_leave(int saved) {
  if (saved < 0) return;
  int rc = setns(saved, CLONE_NEWNET);
  close(saved);
  if (rc < 0)
    napi_fatal_error("seine native", NAPI_AUTO_LENGTH,
                     "setns back to the thread's own network namespace failed", NAPI_AUTO_LENGTH);
}

/** A socket created inside `netns`: the fd, or -errno with the failing step. errno is not preserved. */
static int socket_in(const char *netns, int domain, int type, int protocol, const char **step) {
  int saved, err = ns_enter(netns, &saved, step);
  if (err != 0) return -err;
  int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
  err = errno;
  ns_leave(saved);
  if (fd < 0) {
    *step = "socket";
    return -err;
  }
  return fd;
}

/* ---------------------------------------------------------------------------------------------- */
/* TAP and links                                                                                    */

static napi_value tap_open(napi_env env, napi_callback_info info) {
  static const char *fn = "tapOpen";
  napi_value argv[4];
  char name[IFNAMSIZ], nsbuf[PATH_MAX];
  const char *ns, *step = NULL;
  bool vnet, persist;
  if (!get_args(env, info, argv, 4) || !arg_str(env, argv[0], fn, "name", name, sizeof name) ||
      !arg_netns(env, argv[1], fn, nsbuf, sizeof nsbuf, &ns) || !arg_bool(env, argv[2], fn, "vnetHdr", &vnet) ||
      !arg_bool(env, argv[3], fn, "persist", &persist))
    return NULL;

  /* The TAP joins the namespace /dev/net/tun was opened in; the socket asks that namespace for ifindex. */
  int fd = -1, sock = -1, saved, err = ns_enter(ns, &saved, &step);
  if (err == 0) {
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      step = "open /dev/net/tun";
    } else if ((sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
      err = errno;
      step = "socket";
    }
    ns_leave(saved);
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  int hdr = VNET_HDR_LEN;
  if (err == 0 && ioctl(fd, TUNSETIFF, &ifr) < 0) err = errno, step = "TUNSETIFF";
  if (err == 0 && vnet && ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) err = errno, step = "TUNSETVNETHDRSZ";
  char got[IFNAMSIZ];
  memcpy(got, ifr.ifr_name, IFNAMSIZ);
  got[IFNAMSIZ - 1] = 0;
  if (err == 0 && ioctl(sock, SIOCGIFINDEX, &ifr) < 0) err = errno, step = "SIOCGIFINDEX";
  if (err == 0 && persist && ioctl(fd, TUNSETPERSIST, 1UL) < 0) err = errno, step = "TUNSETPERSIST";
  if (sock >= 0) close(sock);
  if (err != 0) {
    if (fd >= 0) close(fd);
    throw_errno(env, err, fn, name, ns, step);
    return NULL;
  }
  napi_value o, v;
  NAPI_OK(napi_create_object(env, &o));
  NAPI_OK(napi_create_int32(env, fd, &v));
  NAPI_OK(napi_set_named_property(env, o, "fd", v));
  NAPI_OK(napi_create_string_utf8(env, got, NAPI_AUTO_LENGTH, &v));
  NAPI_OK(napi_set_named_property(env, o, "name", v));
  NAPI_OK(napi_create_int32(env, ifr.ifr_ifindex, &v));
  NAPI_OK(napi_set_named_property(env, o, "ifindex", v));
  return o;
}

static napi_value tap_set_offload(napi_env env, napi_callback_info info) {
  napi_value argv[2], r;
  int fd;
  int64_t flags;
  if (!get_args(env, info, argv, 2) || !arg_fd(env, argv[0], "tapSetOffload", &fd) ||
      !arg_int(env, argv[1], "tapSetOffload", "flags", 0, UINT32_MAX, &flags))
    return NULL;
  int rc = ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -errno : 0;
  NAPI_OK(napi_create_int32(env, rc, &r));
  return r;
}

static napi_value tap_set_persist(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  bool on;
  if (!get_args(env, info, argv, 2) || !arg_fd(env, argv[0], "tapSetPersist", &fd) ||
      !arg_bool(env, argv[1], "tapSetPersist", "on", &on))
    return NULL;
  if (ioctl(fd, TUNSETPERSIST, on ? 1UL : 0UL) < 0) {
    char obj[32];
    snprintf(obj, sizeof obj, "fd %d", fd);
    throw_errno(env, errno, "tapSetPersist", obj, NULL, "TUNSETPERSIST");
  }
  return NULL;
}

/** Reads ifr_flags, changes IFF_UP, writes them back; the errno or 0. */
static int set_up(int sock, struct ifreq *ifr, bool up, const char **step) {
  if (ioctl(sock, SIOCGIFFLAGS, ifr) < 0) return *step = "SIOCGIFFLAGS", errno;
  ifr->ifr_flags = up ? (ifr->ifr_flags | IFF_UP) : (ifr->ifr_flags & ~IFF_UP);
  if (ioctl(sock, SIOCSIFFLAGS, ifr) < 0) return *step = "SIOCSIFFLAGS", errno;
  return 0;
}

static napi_value link_set(napi_env env, napi_callback_info info) {
  static const char *fn = "linkSet";
  napi_value argv[5];
  char name[IFNAMSIZ], nsbuf[PATH_MAX];
  const char *ns, *step = NULL;
  bool has_mtu = false, has_mac = false, has_up = false, up = false;
  int64_t mtu = 0;
  uint8_t *mac = NULL;
  size_t mac_len = 0;
  if (!get_args(env, info, argv, 5) || !arg_netns(env, argv[0], fn, nsbuf, sizeof nsbuf, &ns) ||
      !arg_str(env, argv[1], fn, "name", name, sizeof name))
    return NULL;
  if (!is_nullish(env, argv[2])) {
    if (!arg_int(env, argv[2], fn, "mtu", 0, INT_MAX, &mtu)) return NULL;
    has_mtu = true;
  }
  if (!is_nullish(env, argv[3])) {
    if (!arg_u8(env, argv[3], fn, "mac", &mac, &mac_len)) return NULL;
    if (mac_len != 6) {
      throw_range(env, "linkSet: mac must be 6 bytes");
      return NULL;
    }
    has_mac = true;
  }
  if (!is_nullish(env, argv[4])) {
    if (!arg_bool(env, argv[4], fn, "up", &up)) return NULL;
    has_up = true;
  }
  int sock = socket_in(ns, AF_INET, SOCK_DGRAM, 0, &step), err = 0;
  if (sock < 0) {
    throw_errno(env, -sock, fn, name, ns, step);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  /* Down first and up last, so that the MTU and MAC change on a link that is down when asked to be. */
  if (has_up && !up) err = set_up(sock, &ifr, false, &step);
  if (err == 0 && has_mtu) {
    ifr.ifr_mtu = (int)mtu;
    if (ioctl(sock, SIOCSIFMTU, &ifr) < 0) err = errno, step = "SIOCSIFMTU";
  }
  if (err == 0 && has_mac) {
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
    if (ioctl(sock, SIOCSIFHWADDR, &ifr) < 0) err = errno, step = "SIOCSIFHWADDR";
  }
  if (err == 0 && has_up && up) err = set_up(sock, &ifr, true, &step);
  close(sock);
  if (err != 0) throw_errno(env, err, fn, name, ns, step);
  return NULL;
}

static napi_value link_index(napi_env env, napi_callback_info info) {
  static const char *fn = "linkIndex";
  napi_value argv[2], r;
  char name[IFNAMSIZ], nsbuf[PATH_MAX];
  const char *ns, *step = NULL;
  if (!get_args(env, info, argv, 2) || !arg_netns(env, argv[0], fn, nsbuf, sizeof nsbuf, &ns) ||
      !arg_str(env, argv[1], fn, "name", name, sizeof name))
    return NULL;
  int sock = socket_in(ns, AF_INET, SOCK_DGRAM, 0, &step);
  if (sock < 0) {
    throw_errno(env, -sock, fn, name, ns, step);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  int err = ioctl(sock, SIOCGIFINDEX, &ifr) < 0 ? errno : 0;
  close(sock);
  if (err != 0 && err != ENODEV) {
    throw_errno(env, err, fn, name, ns, "SIOCGIFINDEX");
    return NULL;
  }
  NAPI_OK(napi_create_int32(env, err == 0 ? ifr.ifr_ifindex : 0, &r));
  return r;
}

/*
 * netlinkRoute(netns, messages): sends rtnetlink requests, built by the caller (src/live/rtnl.ts), in one
 * write on a NETLINK_ROUTE socket made inside `netns`, and returns one errno per message (0: done), matched
 * by sequence number (message i carries i + 1, each with NLM_F_ACK). Only the framing is checked here.
 */
static napi_value netlink_route(napi_env env, napi_callback_info info) {
  static const char *fn = "netlinkRoute";
  napi_value argv[2], r, v;
  char nsbuf[PATH_MAX];
  const char *ns, *step = NULL;
  uint8_t *req;
  size_t len;
  if (!get_args(env, info, argv, 2) || !arg_netns(env, argv[0], fn, nsbuf, sizeof nsbuf, &ns) ||
      !arg_u8(env, argv[1], fn, "messages", &req, &len))
    return NULL;
  uint32_t n = 0;
  for (size_t o = 0; o < len;) {
    struct nlmsghdr h;
    if (len - o < sizeof h) break;
    memcpy(&h, req + o, sizeof h);
    if (h.nlmsg_len < sizeof h || h.nlmsg_len > len - o || h.nlmsg_seq != n + 1 || !(h.nlmsg_flags & NLM_F_ACK)) break;
    n++;
    o += NLMSG_ALIGN(h.nlmsg_len);
    if (o == len) goto framed;
  }
  throw_range(env, "netlinkRoute: messages must be whole nlmsghdr frames, sequence 1, 2, …, each with NLM_F_ACK");
  return NULL;
framed:;
  int sock = socket_in(ns, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, &step);
  if (sock < 0) {
    throw_errno(env, -sock, fn, "rtnetlink", ns, step);
    return NULL;
  }
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  int err = 0;
  ssize_t sent;
  do sent = sendto(sock, req, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) err = errno, step = "sendto";
  int32_t *errs = calloc(n, sizeof *errs);
  if (errs == NULL && err == 0) err = ENOMEM, step = "calloc";
  uint32_t acked = 0;
  uint8_t buf[8192] __attribute__((aligned(4)));
  while (err == 0 && acked < n) {
    ssize_t got = recv(sock, buf, sizeof buf, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      err = errno, step = "recv";
      break;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)got); h = NLMSG_NEXT(h, got)) {
      if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < 1 || h->nlmsg_seq > n) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) continue;
      errs[h->nlmsg_seq - 1] = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
      acked++;
    }
  }
  close(sock);
  if (err != 0) {
    free(errs);
    throw_errno(env, err, fn, "rtnetlink", ns, step);
    return NULL;
  }
  if (napi_create_array_with_length(env, n, &r) != napi_ok) {
    free(errs);
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    if (napi_create_int32(env, errs[i], &v) != napi_ok || napi_set_element(env, r, i, v) != napi_ok) {
      free(errs);
      return NULL;
    }
  }
  free(errs);
  return r;
}

/* ---------------------------------------------------------------------------------------------- */
/* read()/write() batches (TAP)                                                                     */

static napi_value read_batch(napi_env env, napi_callback_info info) {
  napi_value argv[6], r;
  batch_t b;
  if (!get_args(env, info, argv, 6) || !arg_batch(env, argv, "readBatch", true, false, false, false, &b)) return NULL;
  uint32_t i = 0;
  while (i < b.n) {
    ssize_t got = read(b.fd, b.slab + b.off[i], (size_t)b.len[i]);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || i > 0) break;
      char obj[32];
      snprintf(obj, sizeof obj, "fd %d", b.fd);
      throw_errno(env, errno, "readBatch", obj, NULL, "read");
      return NULL;
    }
    b.out[i++] = got > INT32_MAX ? INT32_MAX : (int32_t)got;
  }
  NAPI_OK(napi_create_uint32(env, i, &r));
  return r;
}

static napi_value write_batch(napi_env env, napi_callback_info info) {
  napi_value argv[5], r;
  batch_t b;
  if (!get_args(env, info, argv, 5) || !arg_batch(env, argv, "writeBatch", false, false, false, false, &b))
    return NULL;
  uint32_t i = 0;
  while (i < b.n) {
    if (write(b.fd, b.slab + b.off[i], (size_t)b.len[i]) < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || i > 0) break;
      char obj[32];
      snprintf(obj, sizeof obj, "fd %d", b.fd);
      throw_errno(env, errno, "writeBatch", obj, NULL, "write");
      return NULL;
    }
    i++;
  }
  NAPI_OK(napi_create_uint32(env, i, &r));
  return r;
}

/* ---------------------------------------------------------------------------------------------- */
/* Sockets: UDP and raw IP                                                                          */

typedef union {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
} sockaddr_u;

static socklen_t to_sockaddr(int family, const uint8_t *addr, int port, sockaddr_u *sa) {
  memset(sa, 0, sizeof *sa);
  if (family == AF_INET) {
    sa->in.sin_family = AF_INET;
    sa->in.sin_port = htons((uint16_t)port);
    memcpy(&sa->in.sin_addr, addr, 4);
    return sizeof sa->in;
  }
  sa->in6.sin6_family = AF_INET6;
  sa->in6.sin6_port = htons((uint16_t)port);
  memcpy(&sa->in6.sin6_addr, addr, 16);
  return sizeof sa->in6;
}

/** The peer into addr[0..16) (IPv4: the first 4 bytes, the rest zero) and its port. */
static void from_sockaddr(const sockaddr_u *sa, uint8_t *addr, int32_t *port) {
  memset(addr, 0, ADDR_LEN);
  if (sa->sa.sa_family == AF_INET) {
    memcpy(addr, &sa->in.sin_addr, 4);
    if (port) *port = ntohs(sa->in.sin_port);
  } else if (sa->sa.sa_family == AF_INET6) {
    memcpy(addr, &sa->in6.sin6_addr, 16);
    if (port) *port = ntohs(sa->in6.sin6_port);
  } else if (port) {
    *port = 0;
  }
}

static bool arg_family(napi_env env, napi_value v, const char *fn, int *family) {
  int64_t f;
  if (!arg_int(env, v, fn, "family", 4, 6, &f)) return false;
  if (f == 5) {
    throw_range(env, "family must be 4 or 6");
    return false;
  }
  *family = f == 4 ? AF_INET : AF_INET6;
  return true;
}

/**
 * recvmmsg into the batch, CHUNK messages per call, until `n`, EAGAIN or a short chunk. Returns the count,
 * or -errno when the very first receive fails with an error other than EAGAIN.
 */
static int64_t mmsg_recv(batch_t *b, bool gro_cmsg) {
  uint32_t done = 0;
  while (done < b->n) {
    struct mmsghdr msgs[CHUNK];
    struct iovec iov[CHUNK];
    sockaddr_u from[CHUNK];
    union {
      char buf[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } ctl[CHUNK];
    uint32_t k = b->n - done < CHUNK ? b->n - done : CHUNK;
    memset(msgs, 0, k * sizeof msgs[0]);
    memset(from, 0, k * sizeof from[0]); /* a message without a peer address reads as family 0: zeros */
    for (uint32_t j = 0; j < k; j++) {
      iov[j].iov_base = b->slab + b->off[done + j];
      iov[j].iov_len = (size_t)b->len[done + j];
      msgs[j].msg_hdr.msg_name = &from[j];
      msgs[j].msg_hdr.msg_namelen = sizeof from[j];
      msgs[j].msg_hdr.msg_iov = &iov[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
      if (gro_cmsg) {
        msgs[j].msg_hdr.msg_control = ctl[j].buf;
        msgs[j].msg_hdr.msg_controllen = sizeof ctl[j].buf;
      }
    }
    int r = recvmmsg(b->fd, msgs, k, MSG_DONTWAIT | MSG_TRUNC, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || done > 0) break;
      return -errno;
    }
    for (int j = 0; j < r; j++) {
      uint32_t i = done + (uint32_t)j;
      b->out[i] = msgs[j].msg_len > INT32_MAX ? INT32_MAX : (int32_t)msgs[j].msg_len;
      from_sockaddr(&from[j], b->addrs + (size_t)i * ADDR_LEN, b->ports ? &b->ports[i] : NULL);
      if (b->segs) {
        int gso = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[j].msg_hdr); c; c = CMSG_NXTHDR(&msgs[j].msg_hdr, c))
          if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(&gso, CMSG_DATA(c), sizeof gso);
        b->segs[i] = gso;
      }
    }
    done += (uint32_t)r;
    if ((uint32_t)r < k) break;
  }
  return done;
}

/**
 * sendmmsg of the batch to addrs/ports (ports NULL = 0), with a UDP_SEGMENT cmsg where segs[i] > 0.
 * Returns the count sent, or -errno when the very first message fails with an error other than EAGAIN.
 */
static int64_t mmsg_send(batch_t *b, int family) {
  uint32_t done = 0;
  while (done < b->n) {
    struct mmsghdr msgs[CHUNK];
    struct iovec iov[CHUNK];
    sockaddr_u to[CHUNK];
    union {
      char buf[CMSG_SPACE(sizeof(uint16_t))];
      struct cmsghdr align;
    } ctl[CHUNK];
    uint32_t k = b->n - done < CHUNK ? b->n - done : CHUNK;
    memset(msgs, 0, k * sizeof msgs[0]);
    for (uint32_t j = 0; j < k; j++) {
      uint32_t i = done + j;
      iov[j].iov_base = b->slab + b->off[i];
      iov[j].iov_len = (size_t)b->len[i];
      msgs[j].msg_hdr.msg_name = &to[j];
      msgs[j].msg_hdr.msg_namelen =
          to_sockaddr(family, b->addrs + (size_t)i * ADDR_LEN, b->ports ? b->ports[i] : 0, &to[j]);
      msgs[j].msg_hdr.msg_iov = &iov[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
      if (b->segs && b->segs[i] > 0) {
        uint16_t gso = (uint16_t)b->segs[i];
        memset(ctl[j].buf, 0, sizeof ctl[j].buf);
        msgs[j].msg_hdr.msg_control = ctl[j].buf;
        msgs[j].msg_hdr.msg_controllen = sizeof ctl[j].buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[j].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof gso);
        memcpy(CMSG_DATA(c), &gso, sizeof gso);
      }
    }
    int r = sendmmsg(b->fd, msgs, k, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || done > 0) break;
      return -errno;
    }
    done += (uint32_t)r;
    if ((uint32_t)r < k) break;
  }
  return done;
}

/** The address family of a socket (sendmmsg needs it to build each peer's sockaddr). */
static int sock_family(int fd) {
  int family = 0;
  socklen_t len = sizeof family;
  return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0 ? -errno : family;
}

static napi_value udp_open(napi_env env, napi_callback_info info) {
  static const char *fn = "udpOpen";
  napi_value argv[5];
  char nsbuf[PATH_MAX], addr[INET6_ADDRSTRLEN + 1], obj[INET6_ADDRSTRLEN + 16];
  const char *ns, *step = NULL;
  int family;
  int64_t port;
  bool gro;
  if (!get_args(env, info, argv, 5) || !arg_netns(env, argv[0], fn, nsbuf, sizeof nsbuf, &ns) ||
      !arg_family(env, argv[1], fn, &family) || !arg_str(env, argv[2], fn, "addr", addr, sizeof addr) ||
      !arg_int(env, argv[3], fn, "port", 0, 65535, &port) || !arg_bool(env, argv[4], fn, "gro", &gro))
    return NULL;
  uint8_t ip[16];
  if (inet_pton(family, addr, ip) != 1) {
    throw_type(env, fn, "addr", family == AF_INET ? "an IPv4 address" : "an IPv6 address");
    return NULL;
  }
  snprintf(obj, sizeof obj, family == AF_INET ? "%s:%d" : "[%s]:%d", addr, (int)port);
  int fd = socket_in(ns, family, SOCK_DGRAM | SOCK_NONBLOCK, 0, &step), err = 0, one = 1;
  if (fd < 0) {
    throw_errno(env, -fd, fn, obj, ns, step);
    return NULL;
  }
  /* An IPv6 socket takes IPv6 only, so that a peer address is never a v4-mapped one. */
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
    err = errno, step = "IPV6_V6ONLY";
  if (err == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) err = errno, step = "SO_REUSEADDR";
  /* Buffers: the FORCE variants pass rmem_max/wmem_max with CAP_NET_ADMIN; otherwise the capped size. */
  int size = SOCK_BUF;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  sockaddr_u sa;
  socklen_t sl = to_sockaddr(family, ip, (int)port, &sa);
  if (err == 0 && bind(fd, &sa.sa, sl) < 0) err = errno, step = "bind";
  sl = sizeof sa;
  if (err == 0 && getsockname(fd, &sa.sa, &sl) < 0) err = errno, step = "getsockname";
  if (err != 0) {
    close(fd);
    throw_errno(env, err, fn, obj, ns, step);
    return NULL;
  }
  bool gro_on = gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  int32_t bound;
  uint8_t ignored[ADDR_LEN];
  from_sockaddr(&sa, ignored, &bound);
  napi_value o, v;
  NAPI_OK(napi_create_object(env, &o));
  NAPI_OK(napi_create_int32(env, fd, &v));
  NAPI_OK(napi_set_named_property(env, o, "fd", v));
  NAPI_OK(napi_create_int32(env, bound, &v));
  NAPI_OK(napi_set_named_property(env, o, "port", v));
  NAPI_OK(napi_get_boolean(env, gro_on, &v));
  NAPI_OK(napi_set_named_property(env, o, "gro", v));
  return o;
}

static napi_value udp_recv_batch(napi_env env, napi_callback_info info) {
  napi_value argv[9], r;
  batch_t b;
  if (!get_args(env, info, argv, 9) || !arg_batch(env, argv, "udpRecvBatch", true, true, true, true, &b)) return NULL;
  int64_t n = mmsg_recv(&b, true);
  if (n < 0) {
    char obj[32];
    snprintf(obj, sizeof obj, "fd %d", b.fd);
    throw_errno(env, (int)-n, "udpRecvBatch", obj, NULL, "recvmmsg");
    return NULL;
  }
  NAPI_OK(napi_create_int64(env, n, &r));
  return r;
}

/** The two socket send calls: the count sent, 0 when the socket is full, -errno when the first fails. */
static napi_value send_batch(napi_env env, napi_callback_info info, const char *fn, size_t argc, bool udp) {
  napi_value argv[8], r;
  batch_t b;
  if (!get_args(env, info, argv, argc) || !arg_batch(env, argv, fn, false, true, udp, udp, &b)) return NULL;
  int family = sock_family(b.fd);
  int64_t n = family < 0 ? family : (family == AF_INET || family == AF_INET6) ? mmsg_send(&b, family) : -EAFNOSUPPORT;
  NAPI_OK(napi_create_int64(env, n, &r));
  return r;
}

static napi_value udp_send_batch(napi_env env, napi_callback_info info) {
  return send_batch(env, info, "udpSendBatch", 8, true);
}

/**
 * udpSendGather(fd, slab, offsets, lens, addrs, ports, segs, count, iovs, messages): sendmmsg of
 * `messages` messages, message m made of the next iovs[m] windows of (offsets, lens) — windows i < count,
 * taken in order, sum(iovs) == count — to addrs[16m..]/ports[m], with a UDP_SEGMENT cmsg when segs[m] > 0.
 * Why: the encapsulated segments of one super-frame sit in separate pool buffers; the kernel's UDP GSO
 * wants their payloads as one message, and a gather list gives it that without copying them together.
 * Returns messages sent (short on EAGAIN), or -errno when the first message fails.
 */
#define GATHER_IOV 1024 /* UIO_MAXIOV: iovecs per sendmmsg call (a message may have at most as many) */
static napi_value udp_send_gather(napi_env env, napi_callback_info info) {
  static const char *fn = "udpSendGather";
  napi_value argv[10], r;
  batch_t b;
  int32_t *iovs;
  size_t iovs_len;
  int64_t msgs_n;
  if (!get_args(env, info, argv, 10) || !arg_batch(env, argv, fn, false, true, true, true, &b) ||
      !arg_i32(env, argv[8], fn, "iovs", &iovs, &iovs_len) || !arg_int(env, argv[9], fn, "messages", 0, INT32_MAX, &msgs_n) ||
      !check_len(env, fn, "iovs", iovs_len, msgs_n))
    return NULL;
  /* addrs, ports and segs were checked for `count` entries (one per window): enough for the messages. */
  uint32_t nm = (uint32_t)msgs_n;
  uint64_t total = 0;
  for (uint32_t m = 0; m < nm; m++) {
    if (iovs[m] < 1 || iovs[m] > GATHER_IOV) {
      char msg[160];
      snprintf(msg, sizeof msg, "%s: message %u has %d windows (1-%d)", fn, m, iovs[m], GATHER_IOV);
      throw_range(env, msg);
      return NULL;
    }
    total += (uint64_t)iovs[m];
  }
  if (total != b.n) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s: the messages take %llu windows, count is %u", fn, (unsigned long long)total, b.n);
    throw_range(env, msg);
    return NULL;
  }
  int family = sock_family(b.fd);
  int64_t done = 0;
  if (family != AF_INET && family != AF_INET6) done = family < 0 ? family : -EAFNOSUPPORT;
  uint32_t m = 0, w = 0;
  while (done >= 0 && m < nm) {
    struct mmsghdr msgs[CHUNK];
    struct iovec iov[GATHER_IOV];
    sockaddr_u to[CHUNK];
    union {
      char buf[CMSG_SPACE(sizeof(uint16_t))];
      struct cmsghdr align;
    } ctl[CHUNK];
    uint32_t k = 0, used = 0, w0 = w;
    memset(msgs, 0, sizeof msgs);
    while (m + k < nm && k < CHUNK && used + (uint32_t)iovs[m + k] <= GATHER_IOV) {
      uint32_t mi = m + k, cnt = (uint32_t)iovs[mi];
      for (uint32_t j = 0; j < cnt; j++) {
        iov[used + j].iov_base = b.slab + b.off[w + j];
        iov[used + j].iov_len = (size_t)b.len[w + j];
      }
      msgs[k].msg_hdr.msg_name = &to[k];
      msgs[k].msg_hdr.msg_namelen = to_sockaddr(family, b.addrs + (size_t)mi * ADDR_LEN, b.ports[mi], &to[k]);
      msgs[k].msg_hdr.msg_iov = &iov[used];
      msgs[k].msg_hdr.msg_iovlen = cnt;
      if (b.segs[mi] > 0) {
        uint16_t gso = (uint16_t)b.segs[mi];
        memset(ctl[k].buf, 0, sizeof ctl[k].buf);
        msgs[k].msg_hdr.msg_control = ctl[k].buf;
        msgs[k].msg_hdr.msg_controllen = sizeof ctl[k].buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[k].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof gso);
        memcpy(CMSG_DATA(c), &gso, sizeof gso);
      }
      used += cnt;
      w += cnt;
      k++;
    }
    int sent = sendmmsg(b.fd, msgs, k, MSG_DONTWAIT);
    if (sent < 0) {
      w = w0;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK && m == 0) done = -errno;
      break;
    }
    m += (uint32_t)sent;
    done = m;
    if ((uint32_t)sent < k) break;
  }
  NAPI_OK(napi_create_int64(env, done, &r));
  return r;
}

static napi_value raw_open(napi_env env, napi_callback_info info) {
  static const char *fn = "rawOpen";
  napi_value argv[3];
  char nsbuf[PATH_MAX], obj[48];
  const char *ns, *step = NULL;
  int family;
  int64_t protocol;
  if (!get_args(env, info, argv, 3) || !arg_netns(env, argv[0], fn, nsbuf, sizeof nsbuf, &ns) ||
      !arg_family(env, argv[1], fn, &family) || !arg_int(env, argv[2], fn, "protocol", 1, 255, &protocol))
    return NULL;
  snprintf(obj, sizeof obj, "ipv%d protocol %d", family == AF_INET ? 4 : 6, (int)protocol);
  int fd = socket_in(ns, family, SOCK_RAW | SOCK_NONBLOCK, (int)protocol, &step), one = 1;
  if (fd < 0) {
    throw_errno(env, -fd, fn, obj, ns, step);
    return NULL;
  }
  /* IPv4: we send whole packets. IPv6 raw sockets have no header on either side (RFC 3542 §3). */
  if (family == AF_INET && setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, fn, obj, ns, "IP_HDRINCL");
    return NULL;
  }
  /* As the UDP sockets' buffers: ESP over IP comes in bursts (a super-frame's segments), which the
     default ~200 KiB receive buffer (some 90 packets) drops. */
  int size = SOCK_BUF;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  napi_value o, v;
  NAPI_OK(napi_create_object(env, &o));
  NAPI_OK(napi_create_int32(env, fd, &v));
  NAPI_OK(napi_set_named_property(env, o, "fd", v));
  return o;
}

static napi_value raw_recv_batch(napi_env env, napi_callback_info info) {
  napi_value argv[7], r;
  batch_t b;
  if (!get_args(env, info, argv, 7) || !arg_batch(env, argv, "rawRecvBatch", true, true, false, false, &b))
    return NULL;
  int64_t n = mmsg_recv(&b, false);
  if (n < 0) {
    char obj[32];
    snprintf(obj, sizeof obj, "fd %d", b.fd);
    throw_errno(env, (int)-n, "rawRecvBatch", obj, NULL, "recvmmsg");
    return NULL;
  }
  NAPI_OK(napi_create_int64(env, n, &r));
  return r;
}

static napi_value raw_send_batch(napi_env env, napi_callback_info info) {
  return send_batch(env, info, "rawSendBatch", 6, false);
}

/* ---------------------------------------------------------------------------------------------- */
/* Readiness: uv_poll_t                                                                             */

typedef struct poller {
  uv_poll_t handle;
  napi_env env; /* NULL once the environment is being torn down */
  napi_ref cb;
  napi_async_context ctx;
  int32_t id;
  int fd;
  struct poller *next;
} poller_t;

/** Per environment (the main thread, or a worker): its active polls. */
typedef struct {
  poller_t *polls;
  int32_t next_id;
} instance_t;

static instance_t *instance(napi_env env) {
  void *p = NULL;
  napi_get_instance_data(env, &p);
  return p;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  poller_t *p = h->data;
  napi_env env = p->env;
  if (env == NULL) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  if (napi_get_reference_value(env, p->cb, &cb) == napi_ok && cb != NULL && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, status < 0 ? status : events, &arg) == napi_ok) {
    /* make_callback, not call_function: it runs the microtasks and ticks queued by the callback.
     * Its receiver must be an object (undefined throws), hence the global one. */
    if (napi_make_callback(env, p->ctx, recv, cb, 1, &arg, &result) == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void poller_release(poller_t *p) {
  napi_handle_scope scope;
  if (p->env != NULL && napi_open_handle_scope(p->env, &scope) == napi_ok) {
    napi_delete_reference(p->env, p->cb);
    napi_async_destroy(p->env, p->ctx);
    napi_close_handle_scope(p->env, scope);
  }
  free(p);
}

/* The JS references go once the handle is closed: pollStop may run inside this poll's own callback. */
static void on_poll_closed(uv_handle_t *h) {
  poller_release(h->data);
}

/** Unlinks the poll and closes its handle; false when `id` is not an active poll. */
static bool poller_stop(instance_t *inst, int32_t id, int fd) {
  for (poller_t **pp = &inst->polls; *pp; pp = &(*pp)->next) {
    poller_t *p = *pp;
    if (p->id == id || (id < 0 && p->fd == fd)) {
      *pp = p->next;
      uv_poll_stop(&p->handle);
      uv_close((uv_handle_t *)&p->handle, on_poll_closed);
      return true;
    }
  }
  return false;
}

static poller_t *poller_find(instance_t *inst, int32_t id, int fd) {
  for (poller_t *p = inst->polls; p; p = p->next)
    if (p->id == id || (id < 0 && p->fd == fd)) return p;
  return NULL;
}

/** events 0 pauses the poll (the handle stays, inactive, and keeps the loop alive no longer). */
static int poller_set(poller_t *p, int events) {
  return events == 0 ? uv_poll_stop(&p->handle) : uv_poll_start(&p->handle, events, on_poll);
}

static bool arg_events(napi_env env, napi_value v, const char *fn, int *events) {
  int64_t e;
  if (!arg_int(env, v, fn, "events", 0, UV_READABLE | UV_WRITABLE, &e)) return false;
  *events = (int)e;
  return true;
}

static void throw_uv(napi_env env, int rc, const char *fn, int fd) {
  char obj[32];
  snprintf(obj, sizeof obj, "fd %d", fd);
  throw_errno(env, -rc, fn, obj, NULL, "uv_poll");
}

static napi_value poll_start(napi_env env, napi_callback_info info) {
  static const char *fn = "pollStart";
  napi_value argv[3], r;
  napi_valuetype t;
  int fd, events;
  if (!get_args(env, info, argv, 3) || !arg_fd(env, argv[0], fn, &fd) || !arg_events(env, argv[1], fn, &events))
    return NULL;
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
    throw_type(env, fn, "cb", "a function");
    return NULL;
  }
  instance_t *inst = instance(env);
  poller_t *other = poller_find(inst, -1, fd);
  if (other != NULL) {
    /* libuv misbehaves with two handles on one fd. */
    char msg[128];
    snprintf(msg, sizeof msg, "pollStart: fd %d is already polled (id %d); use pollUpdate", fd, other->id);
    napi_throw_error(env, "ERR_INVALID_STATE", msg);
    return NULL;
  }
  uv_loop_t *loop;
  NAPI_OK(napi_get_uv_event_loop(env, &loop));
  poller_t *p = calloc(1, sizeof *p);
  if (p == NULL) {
    napi_throw_error(env, NULL, "pollStart: out of memory");
    return NULL;
  }
  int rc = uv_poll_init(loop, &p->handle, fd);
  if (rc < 0) {
    free(p);
    throw_uv(env, rc, fn, fd);
    return NULL;
  }
  p->handle.data = p;
  p->env = env;
  p->fd = fd;
  p->id = ++inst->next_id;
  p->next = inst->polls;
  inst->polls = p;
  napi_value name;
  if (napi_create_reference(env, argv[2], 1, &p->cb) != napi_ok ||
      napi_create_string_utf8(env, "seine.poll", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &p->ctx) != napi_ok) {
    p->env = NULL; /* nothing to release: the process is out of memory or throwing */
    poller_stop(inst, p->id, -1);
    napi_throw_error(env, NULL, "pollStart: could not keep the callback");
    return NULL;
  }
  rc = poller_set(p, events);
  if (rc < 0) {
    poller_stop(inst, p->id, -1);
    throw_uv(env, rc, fn, fd);
    return NULL;
  }
  NAPI_OK(napi_create_int32(env, p->id, &r));
  return r;
}

static napi_value poll_update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t id;
  int events;
  if (!get_args(env, info, argv, 2) || !arg_int(env, argv[0], "pollUpdate", "id", 1, INT32_MAX, &id) ||
      !arg_events(env, argv[1], "pollUpdate", &events))
    return NULL;
  poller_t *p = poller_find(instance(env), (int32_t)id, -1);
  if (p == NULL) {
    throw_range(env, "pollUpdate: no active poll has this id");
    return NULL;
  }
  int rc = poller_set(p, events);
  if (rc < 0) throw_uv(env, rc, "pollUpdate", p->fd);
  return NULL;
}

static napi_value poll_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t id;
  if (!get_args(env, info, argv, 1) || !arg_int(env, argv[0], "pollStop", "id", 0, INT32_MAX, &id)) return NULL;
  poller_stop(instance(env), (int32_t)id, -1); /* stopping twice is harmless */
  return NULL;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, argv, 1) || !arg_fd(env, argv[0], "close", &fd)) return NULL;
  /* A poll left on the fd would make libuv watch whatever reuses the number next. */
  while (poller_stop(instance(env), -1, fd)) {
  }
  if (close(fd) < 0 && errno != EINTR) {
    char obj[32];
    snprintf(obj, sizeof obj, "fd %d", fd);
    throw_errno(env, errno, "close", obj, NULL, NULL);
  }
  return NULL;
}

/** Environment teardown: stop every poll; the JS references go now, while the environment still exists. */
static void cleanup(void *arg) {
  instance_t *inst = arg;
  while (inst->polls != NULL) {
    poller_t *p = inst->polls;
    napi_delete_reference(p->env, p->cb);
    napi_async_destroy(p->env, p->ctx);
    p->env = NULL;
    poller_stop(inst, p->id, -1);
  }
  free(inst);
}

/* ---------------------------------------------------------------------------------------------- */
/* Process start without fork: posix_spawn                                                          */
/*
 * libuv starts a child with fork(), which copies the parent's page tables: from an agent holding a large
 * packet pool each exec costs more (bench/spawn.ts measures both ways: spawn.fork.*). glibc's
 * posix_spawn uses clone(CLONE_VM|CLONE_VFORK) instead — nothing copied, cost independent of the
 * parent's size — and reports an exec failure (ENOENT, EACCES) as its return value.
 *
 * spawnFast(path, argv, envp) starts `path` with stdin/stdout/stderr on pipes and returns the parent's
 * ends (O_CLOEXEC, blocking: Node's pipe handles set their own mode) with the pid and a pidfd (readable
 * once the child has exited; -1 where the kernel has no pidfd_open). The child gets an empty signal mask
 * and default dispositions (Node ignores SIGPIPE; an ignored signal would survive the exec). libuv reaps
 * only the pids it started, so a child of spawnFast is the caller's to reap: reap(pid) is waitpid
 * WNOHANG — null while it runs, else { code, signal } (one of them null).
 */

/** A JS array of strings as a NULL-terminated, malloc'd vector (freed by strv_free), or NULL after a throw. */
static char **arg_strv(napi_env env, napi_value v, const char *fn, const char *what) {
  bool is;
  uint32_t n;
  if (napi_is_array(env, v, &is) != napi_ok || !is || napi_get_array_length(env, v, &n) != napi_ok) {
    throw_type(env, fn, what, "an array of strings");
    return NULL;
  }
  char **out = calloc((size_t)n + 1, sizeof *out);
  for (uint32_t i = 0; out != NULL && i < n; i++) {
    napi_value e;
    napi_valuetype t;
    size_t len;
    bool str = napi_get_element(env, v, i, &e) == napi_ok && napi_typeof(env, e, &t) == napi_ok && t == napi_string &&
               napi_get_value_string_utf8(env, e, NULL, 0, &len) == napi_ok;
    bool mem = str && (out[i] = malloc(len + 1)) != NULL;
    if (!mem || napi_get_value_string_utf8(env, e, out[i], len + 1, &len) != napi_ok || strlen(out[i]) != len) {
      if (str && !mem)
        napi_throw_error(env, NULL, "seine native: out of memory");
      else
        throw_type(env, fn, what, "an array of strings without NUL characters");
      for (uint32_t j = 0; j <= i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  if (out == NULL) napi_throw_error(env, NULL, "seine native: out of memory");
  return out;
}

static void strv_free(char **v) {
  for (char **p = v; p != NULL && *p != NULL; p++) free(*p);
  free(v);
}

static napi_value spawn_fast(napi_env env, napi_callback_info info) {
  static const char *fn = "spawnFast";
  napi_value argv[3], r, v;
  char path[PATH_MAX];
  if (!get_args(env, info, argv, 3) || !arg_str(env, argv[0], fn, "path", path, sizeof path)) return NULL;
  char **args = arg_strv(env, argv[1], fn, "argv");
  if (args == NULL) return NULL;
  char **envp = arg_strv(env, argv[2], fn, "envp");
  if (envp == NULL) {
    strv_free(args);
    return NULL;
  }
  int p[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}}, err = 0, pidfd = -1;
  const char *step = "pipe2";
  pid_t pid = -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  /* Each step may fail (ENOMEM): the first failure is thrown with its step's name. */
  bool fa_live = (err = posix_spawn_file_actions_init(&fa)) == 0, at_live = false;
  if (!fa_live) step = "posix_spawn_file_actions_init";
  if (err == 0) {
    at_live = (err = posix_spawnattr_init(&at)) == 0;
    if (!at_live) step = "posix_spawnattr_init";
  }
  for (int i = 0; i < 3 && err == 0; i++) err = pipe2(p[i], O_CLOEXEC) < 0 ? errno : 0;
  if (err == 0) {
    /* dup2 onto 0/1/2 clears O_CLOEXEC there; the pipes' own numbers close at exec. */
    step = "posix_spawn_file_actions_adddup2";
    for (int i = 0; i < 3 && err == 0; i++) err = posix_spawn_file_actions_adddup2(&fa, i == 0 ? p[0][0] : p[i][1], i);
  }
  if (err == 0) {
    step = "posix_spawnattr_set";
    err = posix_spawnattr_setsigmask(&at, &none);
    if (err == 0) err = posix_spawnattr_setsigdefault(&at, &all);
    if (err == 0) err = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  if (err == 0) {
    step = "posix_spawn";
    err = posix_spawn(&pid, path, &fa, &at, args, envp);
  }
  if (fa_live) posix_spawn_file_actions_destroy(&fa);
  if (at_live) posix_spawnattr_destroy(&at);
  strv_free(args);
  strv_free(envp);
  /* The child's ends are the child's now (or nobody's, after a failure). */
  int child_end[3] = {p[0][0], p[1][1], p[2][1]}, mine[3] = {p[0][1], p[1][0], p[2][0]};
  for (int i = 0; i < 3; i++)
    if (child_end[i] >= 0) close(child_end[i]);
  if (err != 0) {
    for (int i = 0; i < 3; i++)
      if (mine[i] >= 0) close(mine[i]);
    throw_errno(env, err, fn, path, NULL, step);
    return NULL;
  }
#ifdef SYS_pidfd_open
  /* pidfd_open sets close-on-exec itself (pidfd_open(2)). */
  pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
  const char *names[5] = {"pid", "pidfd", "stdin", "stdout", "stderr"};
  int vals[5] = {pid, pidfd, mine[0], mine[1], mine[2]};
  bool ok = napi_create_object(env, &r) == napi_ok;
  for (int i = 0; ok && i < 5; i++)
    ok = napi_create_int32(env, vals[i], &v) == napi_ok && napi_set_named_property(env, r, names[i], v) == napi_ok;
  if (ok) return r;
  /* Nobody will hold the fds or reap the child: undo both before throwing. */
  for (int i = 1; i < 5; i++)
    if (vals[i] >= 0) close(vals[i]);
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, NULL, "seine native: spawnFast: result object failed");
  return NULL;
}

static napi_value reap(napi_env env, napi_callback_info info) {
  napi_value argv[1], r, code, sig;
  int64_t pid;
  int st;
  if (!get_args(env, info, argv, 1) || !arg_int(env, argv[0], "reap", "pid", 1, INT32_MAX, &pid)) return NULL;
  pid_t got;
  while ((got = waitpid((pid_t)pid, &st, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (got < 0) {
    char obj[32];
    snprintf(obj, sizeof obj, "pid %lld", (long long)pid);
    throw_errno(env, errno, "reap", obj, NULL, "waitpid");
    return NULL;
  }
  if (got == 0) {
    NAPI_OK(napi_get_null(env, &r));
    return r;
  }
  NAPI_OK(napi_create_object(env, &r));
  NAPI_OK(napi_get_null(env, &code));
  NAPI_OK(napi_get_null(env, &sig));
  if (WIFEXITED(st)) NAPI_OK(napi_create_int32(env, WEXITSTATUS(st), &code));
  else NAPI_OK(napi_create_int32(env, WTERMSIG(st), &sig));
  NAPI_OK(napi_set_named_property(env, r, "code", code));
  NAPI_OK(napi_set_named_property(env, r, "signal", sig));
  return r;
}

/* ---------------------------------------------------------------------------------------------- */
/* Batched AEAD for ESP, over Node's own OpenSSL                                                    */
/*
 * Node exports its OpenSSL's symbols and installs its headers (include/node/openssl), so the EVP calls
 * below resolve against the node binary at load time; the addon links no libcrypto of its own (two
 * OpenSSLs in one process would each keep their own state and could differ in version).
 *
 * One context per SA and direction: an EVP_CIPHER_CTX keyed once when created; a packet only sets its
 * 12-byte nonce (salt ‖ IV) on it. The key schedule, the GHASH tables and the provider lookup are paid
 * once per SA instead of once per packet, which is what node:crypto's cipher objects cost (~5 µs each).
 *
 * A batch call takes the slab and, per packet i, six int32 at desc[6i..6i+6): the index of its context in
 * the `ctxs` array (so one batch mixes SAs and ciphers), the message offset and length in the slab, the
 * offset and length of its additional data in `aad`, and the offset of its 16-byte tag in the slab. Its
 * nonce is nonces[12i..12i+12). It writes status[i] = 1 (sealed / authenticated and decrypted) or 0, and
 * returns how many were 1. Every argument is checked before any packet is touched: wrong types throw
 * TypeError, a window outside its array or a tag overlapping its message RangeError, both naming the
 * argument and the packet.
 *
 * Opening decrypts in place (OpenSSL's GCM and ChaCha20-Poly1305 verify the tag only at the end), and a
 * tag that does not verify is answered by running the same keystream over the message again: both are
 * counter-mode stream ciphers, so the bytes become exactly the ciphertext that arrived. A failed open
 * therefore leaves no plaintext behind and the packet as it was received (what esp/esp.ts promises for a
 * dropped packet), at the price of a second pass for forged packets only.
 */

#define AEAD_TAG_LEN 16
#define AEAD_NONCE_LEN 12
#define AEAD_DESC 6
#define AEAD_MAX_AAD 64
#define AEAD_MAX_CTXS 1024

/* Matches AeadCipherId in src/esp/aead-batch.ts. */
enum { AEAD_AES_128_GCM, AEAD_AES_192_GCM, AEAD_AES_256_GCM, AEAD_CHACHA20_POLY1305, AEAD_CIPHERS };

typedef struct {
  EVP_CIPHER_CTX *ctx; /* NULL once freed (aeadFree, or the object's finalizer) */
  int cipher;
  bool encrypt;
} aead_t;

/* Marks the objects aeadCreate returns, so that a batch refuses any other object (a foreign wrap). */
static const napi_type_tag AEAD_TAG = {0x7365696e65616561ULL, 0x6164637478763031ULL};

static void aead_release(aead_t *a) {
  if (a->ctx != NULL) {
    EVP_CIPHER_CTX_free(a->ctx); /* cleanses the key schedule */
    a->ctx = NULL;
  }
}

static void aead_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  aead_release(data);
  free(data);
}

/** aeadCreate(cipher, key, encrypt): an object holding a keyed context. */
static napi_value aead_create(napi_env env, napi_callback_info info) {
  static const int key_len[AEAD_CIPHERS] = {16, 24, 32, 32};
  napi_value argv[3], obj;
  int64_t cipher;
  uint8_t *key;
  size_t key_n;
  bool enc;
  if (!get_args(env, info, argv, 3) || !arg_int(env, argv[0], "aeadCreate", "cipher", 0, AEAD_CIPHERS - 1, &cipher) ||
      !arg_u8(env, argv[1], "aeadCreate", "key", &key, &key_n) ||
      !arg_bool(env, argv[2], "aeadCreate", "encrypt", &enc))
    return NULL;
  if (key_n != (size_t)key_len[cipher]) {
    char msg[128];
    snprintf(msg, sizeof msg, "aeadCreate: key is %zu bytes, cipher %d needs %d", key_n, (int)cipher, key_len[cipher]);
    throw_range(env, msg);
    return NULL;
  }
  const EVP_CIPHER *c = cipher == AEAD_AES_128_GCM   ? EVP_aes_128_gcm()
                        : cipher == AEAD_AES_192_GCM ? EVP_aes_192_gcm()
                        : cipher == AEAD_AES_256_GCM ? EVP_aes_256_gcm()
                                                     : EVP_chacha20_poly1305();
  aead_t *a = calloc(1, sizeof *a);
  if (a == NULL || (a->ctx = EVP_CIPHER_CTX_new()) == NULL) {
    free(a);
    napi_throw_error(env, NULL, "aeadCreate: out of memory");
    return NULL;
  }
  a->cipher = (int)cipher;
  a->encrypt = enc;
  if (EVP_CipherInit_ex(a->ctx, c, NULL, NULL, NULL, enc) != 1 ||
      EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_IVLEN, AEAD_NONCE_LEN, NULL) != 1 ||
      EVP_CipherInit_ex(a->ctx, NULL, NULL, key, NULL, enc) != 1) {
    aead_release(a);
    free(a);
    napi_throw_error(env, NULL, "aeadCreate: OpenSSL refused the cipher or key");
    return NULL;
  }
  if (napi_create_object(env, &obj) != napi_ok || napi_wrap(env, obj, a, aead_finalize, NULL, NULL) != napi_ok) {
    aead_release(a);
    free(a);
    napi_throw_error(env, NULL, "aeadCreate: could not wrap the context");
    return NULL;
  }
  NAPI_OK(napi_type_tag_object(env, obj, &AEAD_TAG));
  return obj;
}

/** The context behind an aeadCreate object, or NULL with a TypeError thrown. */
static aead_t *arg_aead(napi_env env, napi_value v, const char *fn, const char *what) {
  napi_valuetype t;
  bool tagged = false;
  void *a = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_object || napi_check_object_type_tag(env, v, &AEAD_TAG, &tagged) != napi_ok ||
      !tagged || napi_unwrap(env, v, &a) != napi_ok || a == NULL) {
    throw_type(env, fn, what, "a context from aeadCreate");
    return NULL;
  }
  return a;
}

/** aeadFree(ctx): frees the context now (the object's finalizer would otherwise); using it later throws. */
static napi_value aead_free(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  aead_t *a;
  if (!get_args(env, info, argv, 1) || (a = arg_aead(env, argv[0], "aeadFree", "ctx")) == NULL) return NULL;
  aead_release(a);
  return NULL;
}

static bool aead_range(napi_env env, const char *fn, uint32_t i, const char *what, int32_t off, int32_t len,
                       size_t cap, const char *in) {
  if (off >= 0 && len >= 0 && (uint64_t)off + (uint64_t)len <= cap) return true;
  char msg[256];
  snprintf(msg, sizeof msg, "%s: packet %u: %s (offset %d, length %d) is outside %s of %zu bytes", fn, i, what, off,
           len, in, cap);
  throw_range(env, msg);
  return false;
}

static napi_value aead_batch(napi_env env, napi_callback_info info, bool seal) {
  const char *fn = seal ? "aeadSealBatch" : "aeadOpenBatch";
  napi_value argv[7], r;
  aead_t *ctxs[AEAD_MAX_CTXS];
  uint8_t *slab, *nonces, *aad, *status;
  int32_t *desc;
  size_t slab_n, nonce_n, aad_n, status_n, desc_n;
  uint32_t nctx;
  bool is_array;
  int64_t count;
  if (!get_args(env, info, argv, 7)) return NULL;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    throw_type(env, fn, "ctxs", "an Array of contexts from aeadCreate");
    return NULL;
  }
  NAPI_OK(napi_get_array_length(env, argv[0], &nctx));
  if (nctx > AEAD_MAX_CTXS) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: ctxs has %u contexts, at most %d allowed", fn, nctx, AEAD_MAX_CTXS);
    throw_range(env, msg);
    return NULL;
  }
  for (uint32_t k = 0; k < nctx; k++) {
    napi_value e;
    char what[32];
    NAPI_OK(napi_get_element(env, argv[0], k, &e));
    snprintf(what, sizeof what, "ctxs[%u]", k);
    if ((ctxs[k] = arg_aead(env, e, fn, what)) == NULL) return NULL;
    if (ctxs[k]->ctx == NULL || ctxs[k]->encrypt != seal) {
      throw_type(env, fn, what, ctxs[k]->ctx == NULL ? "a context not yet freed" : seal ? "a sealing context" : "an opening context");
      return NULL;
    }
  }
  if (!arg_u8(env, argv[1], fn, "slab", &slab, &slab_n) || !arg_i32(env, argv[2], fn, "desc", &desc, &desc_n) ||
      !arg_u8(env, argv[3], fn, "nonces", &nonces, &nonce_n) || !arg_u8(env, argv[4], fn, "aad", &aad, &aad_n) ||
      !arg_u8(env, argv[5], fn, "status", &status, &status_n) ||
      !arg_int(env, argv[6], fn, "count", 0, INT32_MAX / AEAD_DESC, &count))
    return NULL;
  uint32_t n = (uint32_t)count;
  if (!check_len(env, fn, "desc", desc_n, (uint64_t)n * AEAD_DESC) ||
      !check_len(env, fn, "nonces", nonce_n, (uint64_t)n * AEAD_NONCE_LEN) || !check_len(env, fn, "status", status_n, n))
    return NULL;
  for (uint32_t i = 0; i < n; i++) {
    const int32_t *d = desc + (size_t)i * AEAD_DESC;
    if (d[0] < 0 || (uint32_t)d[0] >= nctx) {
      char msg[128];
      snprintf(msg, sizeof msg, "%s: packet %u: context index %d is outside ctxs (%u)", fn, i, d[0], nctx);
      throw_range(env, msg);
      return NULL;
    }
    if (!aead_range(env, fn, i, "message", d[1], d[2], slab_n, "the slab") ||
        !aead_range(env, fn, i, "aad", d[3], d[4], aad_n, "aad") ||
        !aead_range(env, fn, i, "tag", d[5], AEAD_TAG_LEN, slab_n, "the slab"))
      return NULL;
    if (d[4] > AEAD_MAX_AAD || (d[5] < d[1] + d[2] && d[5] + AEAD_TAG_LEN > d[1])) {
      char msg[160];
      snprintf(msg, sizeof msg, "%s: packet %u: %s", fn, i,
               d[4] > AEAD_MAX_AAD ? "aad longer than 64 bytes" : "the tag overlaps the message");
      throw_range(env, msg);
      return NULL;
    }
  }
  uint32_t ok = 0;
  for (uint32_t i = 0; i < n; i++) {
    const int32_t *d = desc + (size_t)i * AEAD_DESC;
    EVP_CIPHER_CTX *c = ctxs[d[0]]->ctx;
    uint8_t *msg = slab + d[1], *tag = slab + d[5];
    const uint8_t *nonce = nonces + (size_t)i * AEAD_NONCE_LEN;
    int outl, good;
    uint8_t fin[AEAD_TAG_LEN];
    good = EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, seal) == 1 &&
           (seal || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, AEAD_TAG_LEN, tag) == 1) &&
           (d[4] == 0 || EVP_CipherUpdate(c, NULL, &outl, aad + d[3], d[4]) == 1) &&
           (d[2] == 0 || EVP_CipherUpdate(c, msg, &outl, msg, d[2]) == 1) && EVP_CipherFinal_ex(c, fin, &outl) == 1 &&
           (!seal || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, AEAD_TAG_LEN, tag) == 1);
    if (!good && !seal && d[2] > 0) {
      /* The same keystream again turns the plaintext back into the ciphertext (see above). Should even this
       * fail, the message is wiped rather than left readable. */
      if (EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, 0) != 1 || EVP_CipherUpdate(c, msg, &outl, msg, d[2]) != 1)
        OPENSSL_cleanse(msg, (size_t)d[2]);
    }
    status[i] = good ? 1 : 0;
    ok += good ? 1 : 0;
  }
  NAPI_OK(napi_create_uint32(env, ok, &r));
  return r;
}

/** aeadSealBatch(ctxs, slab, desc, nonces, aad, status, count) */
static napi_value aead_seal_batch(napi_env env, napi_callback_info info) { return aead_batch(env, info, true); }

/** aeadOpenBatch(ctxs, slab, desc, nonces, aad, status, count) */
static napi_value aead_open_batch(napi_env env, napi_callback_info info) { return aead_batch(env, info, false); }

static napi_value init(napi_env env, napi_value exports) {
  instance_t *inst = calloc(1, sizeof *inst);
  if (inst == NULL || napi_set_instance_data(env, inst, NULL, NULL) != napi_ok ||
      napi_add_env_cleanup_hook(env, cleanup, inst) != napi_ok) {
    free(inst);
    napi_throw_error(env, NULL, "seine native: could not initialise");
    return NULL;
  }
  napi_property_descriptor props[] = {
      {"tapOpen", NULL, tap_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tapSetOffload", NULL, tap_set_offload, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tapSetPersist", NULL, tap_set_persist, NULL, NULL, NULL, napi_enumerable, NULL},
      {"linkSet", NULL, link_set, NULL, NULL, NULL, napi_enumerable, NULL},
      {"linkIndex", NULL, link_index, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netlinkRoute", NULL, netlink_route, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readBatch", NULL, read_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeBatch", NULL, write_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpRecvBatch", NULL, udp_recv_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSendBatch", NULL, udp_send_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSendGather", NULL, udp_send_gather, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rawOpen", NULL, raw_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rawRecvBatch", NULL, raw_recv_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rawSendBatch", NULL, raw_send_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollUpdate", NULL, poll_update, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStop", NULL, poll_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"spawnFast", NULL, spawn_fast, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reap", NULL, reap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadCreate", NULL, aead_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadFree", NULL, aead_free, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadSealBatch", NULL, aead_seal_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadOpenBatch", NULL, aead_open_batch, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_OK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

#else /* not Linux: the module loads and exports nothing; seine's live mode says why it is off. */

static napi_value init(napi_env env, napi_value exports) {
  (void)env;
  return exports;
}

#endif

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
