// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// Listener events for porteiro: one record in a ring buffer each time a TCP
// socket starts or stops listening, and each time a UDP socket is bound or
// released. The owner (pid, uid, comm, cgroup) is taken here, at the event,
// because by the time userspace reads the record the process may be gone.
//
// And the traffic of TCP connections that closed, summed per local address
// and port, so that "porteiro top", which samples live connections, can
// count those that closed between two of its samples.

#include "core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define SOCK_DGRAM 2
#define TCP_ESTABLISHED 1
#define TCP_FIN_WAIT1 4
#define TCP_FIN_WAIT2 5
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10
#define TCP_CLOSING 11

#define KIND_OPENED 1
#define KIND_CLOSED 2

#define FLAG_V6ONLY 0x01
#define FLAG_REUSEPORT 0x02
#define FLAG_PID_OUTSIDE_NS 0x04 // the task is not in the reader's pid namespace

#define COUNTER_DROPS 0     // ring buffer full: the record was lost
#define COUNTER_UNTRACKED 1 // a UDP bind not remembered, so its release is not reported
#define COUNTERS 2

// The record read by decode.go; keep both in step. 88 bytes, no holes.
struct event {
	__u64 ts_ns;     // CLOCK_BOOTTIME
	__u64 cookie;    // the socket cookie: the key that matches a close to its open
	__u64 cgroup_id; // of the task, cgroup v2
	__u64 inode;     // the socket's inode, 0 when it has no file any more
	__u32 netns;     // inode of the socket's network namespace
	__u32 tgid;      // process id, in the reader's pid namespace
	__u32 pid;       // thread id, in the reader's pid namespace
	__u32 uid;       // of the task
	__u8 kind;
	__u8 proto;
	__u8 family;
	__u8 flags;
	__u16 port;      // host order
	__u16 pad;
	__u8 addr[16];   // IPv4 in the first 4 bytes
	char comm[16];
};

struct event _event_unused __attribute__((unused)); // keep the type in BTF for bpf2go

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); // set by userspace at load
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// UDP sockets seen at bind, so that only their release is reported (every
// UDP socket is released, most were never bound by hand).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 18);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u8);
} udp_bound SEC(".maps");

// TCP listens under way: the tracepoint sees the socket enter LISTEN before
// the kernel has picked the port of a listen() without bind(), and before
// it knows whether the listen succeeds. The record waits here, keyed by
// cookie, until sockops reports the listen done (with its port) or the
// socket goes back to CLOSE (the listen failed: nothing is reported). An
// entry lives for the length of one listen() call.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct event);
} tcp_pending SEC(".maps");

// The local end of closed connections: a connection accepted by a listener
// has the listener's port. 24 bytes, no holes; read by closed_linux.go.
struct closed_key {
	__u32 netns;   // inode of the socket's network namespace
	__u16 port;    // host order
	__u8 family;
	__u8 pad;
	__u8 addr[16]; // IPv4 in the first 4 bytes
};

// Sums since load over every connection that closed on that local end.
struct closed_val {
	__u64 bytes_in;  // tcpi_bytes_received at close
	__u64 bytes_out; // tcpi_bytes_acked at close
	__u64 closes;
};

// Every TCP close from a connected state, outgoing connections included
// (their ephemeral ports are keys nobody asks for): telling an accepted
// socket from a connected one would take per-socket storage, and would
// miss the connections accepted before load. LRU bounds the map; a busy
// listener's key is touched at each close, so what falls out is idle.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct closed_key);
	__type(value, struct closed_val);
} closed_conns SEC(".maps");

// The reader's pid namespace (dev and inode of /proc/self/ns/pid), so pids
// are those the reader sees in /proc. Zero: report the kernel's global pids.
volatile const __u64 pidns_dev = 0;
volatile const __u64 pidns_ino = 0;

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline void fill_task(struct event *ev)
{
	ev->ts_ns = bpf_ktime_get_boot_ns();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	if (pidns_ino) {
		struct bpf_pidns_info ns = {};
		if (bpf_get_ns_current_pid_tgid(pidns_dev, pidns_ino, &ns, sizeof(ns)) == 0) {
			ev->tgid = ns.tgid;
			ev->pid = ns.pid;
		} else {
			ev->flags |= FLAG_PID_OUTSIDE_NS;
		}
		return;
	}
	__u64 id = bpf_get_current_pid_tgid();
	ev->tgid = id >> 32;
	ev->pid = (__u32)id;
}

static __always_inline void fill_sock(struct event *ev, struct sock *sk)
{
	ev->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev->port = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (ev->family == AF_INET6) {
		BPF_CORE_READ_INTO(&ev->addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		if (BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_ipv6only))
			ev->flags |= FLAG_V6ONLY;
	} else {
		__be32 a = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(ev->addr, &a, 4);
	}
	if (BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_reuseport))
		ev->flags |= FLAG_REUSEPORT;
	ev->inode = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
}

static __always_inline void emit(struct event *ev)
{
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), 0))
		count(COUNTER_DROPS);
}

// count_close adds a connection's bytes to the sums of its local end. It
// runs as the socket enters CLOSE, when the counters are final and the
// kernel has already cleared skc_num (inet_put_port); inet_sport keeps
// the port.
static __always_inline void count_close(struct sock *sk)
{
	struct closed_key k = {};
	struct closed_val v = {.closes = 1};

	k.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	k.port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	k.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (k.family == AF_INET6) {
		BPF_CORE_READ_INTO(&k.addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	} else {
		__be32 a = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(k.addr, &a, 4);
	}
	v.bytes_in = BPF_CORE_READ((struct tcp_sock *)sk, bytes_received);
	v.bytes_out = BPF_CORE_READ((struct tcp_sock *)sk, bytes_acked);
	for (int i = 0; i < 2; i++) {
		struct closed_val *p = bpf_map_lookup_elem(&closed_conns, &k);
		if (p) {
			__sync_fetch_and_add(&p->bytes_in, v.bytes_in);
			__sync_fetch_and_add(&p->bytes_out, v.bytes_out);
			__sync_fetch_and_add(&p->closes, 1);
			return;
		}
		// Another CPU may insert the key first: then add to its entry.
		if (bpf_map_update_elem(&closed_conns, &k, &v, BPF_NOEXIST) == 0)
			return;
	}
}

SEC("tp_btf/inet_sock_set_state")
int inet_sock_set_state(__u64 *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	int oldstate = (int)ctx[1];
	int newstate = (int)ctx[2];
	struct event ev = {};

	if (newstate == TCP_CLOSE) {
		switch (oldstate) {
		case TCP_ESTABLISHED:
		case TCP_FIN_WAIT1:
		case TCP_FIN_WAIT2:
		case TCP_CLOSE_WAIT:
		case TCP_LAST_ACK:
		case TCP_CLOSING:
			if (BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP)
				count_close(sk);
			return 0;
		}
	}
	if (newstate == TCP_LISTEN && oldstate != TCP_LISTEN)
		ev.kind = KIND_OPENED;
	else if (oldstate == TCP_LISTEN && newstate == TCP_CLOSE)
		ev.kind = KIND_CLOSED;
	else
		return 0;
	// MPTCP and SCTP pass through here too.
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	ev.proto = IPPROTO_TCP;
	ev.cookie = bpf_get_socket_cookie(sk);
	if (ev.kind == KIND_CLOSED && bpf_map_delete_elem(&tcp_pending, &ev.cookie) == 0)
		return 0; // the listen failed, so it was never reported open
	fill_sock(&ev, sk);
	if (ev.kind == KIND_CLOSED)
		ev.port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	fill_task(&ev);
	if (ev.kind == KIND_OPENED && bpf_map_update_elem(&tcp_pending, &ev.cookie, &ev, BPF_ANY) == 0)
		return 0; // reported by sockops once the listen is done
	emit(&ev);
	return 0;
}

// Called at the end of a successful listen(), in the listener's task, with
// the port known.
SEC("sockops")
int tcp_listen_done(struct bpf_sock_ops *ctx)
{
	if (ctx->op != BPF_SOCK_OPS_TCP_LISTEN_CB)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct event *ev = bpf_map_lookup_elem(&tcp_pending, &cookie);
	if (!ev)
		return 1;
	ev->port = ctx->local_port;
	emit(ev);
	bpf_map_delete_elem(&tcp_pending, &cookie);
	return 1;
}

static __always_inline int udp_bind(struct bpf_sock *ctx)
{
	struct event ev = {};

	if (ctx->protocol != IPPROTO_UDP || ctx->type != SOCK_DGRAM)
		return 1;
	ev.kind = KIND_OPENED;
	ev.proto = IPPROTO_UDP;
	ev.cookie = bpf_get_socket_cookie(ctx);
	fill_sock(&ev, bpf_cast_to_kern_ctx(ctx));
	fill_task(&ev);
	__u8 one = 1;
	if (bpf_map_update_elem(&udp_bound, &ev.cookie, &one, BPF_ANY))
		count(COUNTER_UNTRACKED);
	emit(&ev);
	return 1; // allow: porteiro watches, it never refuses a bind
}

SEC("cgroup/post_bind4")
int post_bind4(struct bpf_sock *ctx) { return udp_bind(ctx); }

SEC("cgroup/post_bind6")
int post_bind6(struct bpf_sock *ctx) { return udp_bind(ctx); }

SEC("cgroup/sock_release")
int sock_release(struct bpf_sock *ctx)
{
	struct event ev = {};

	if (ctx->protocol != IPPROTO_UDP || ctx->type != SOCK_DGRAM)
		return 1;
	ev.cookie = bpf_get_socket_cookie(ctx);
	if (bpf_map_delete_elem(&udp_bound, &ev.cookie))
		return 1; // never bound while we watched
	ev.kind = KIND_CLOSED;
	ev.proto = IPPROTO_UDP;
	fill_sock(&ev, bpf_cast_to_kern_ctx(ctx));
	fill_task(&ev);
	emit(&ev);
	return 1;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
