// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The kernel's own view of sockets and processes for `porteiro audit`. Each
// program is a BPF iterator that walks a kernel table with its own code, not
// the show functions behind /proc/net/* or the getdents behind /proc, so a
// hook on those does not hide anything from it. Every program writes the
// same fixed record (decoded by record.go) into the iterator's seq_file.

#include "core.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_MPTCP 262
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define TCP_TIME_WAIT 6
#define TCP_NEW_SYN_RECV 12

#define KIND_TCP 1  // iter/tcp: one socket of the reader's network namespace
#define KIND_UDP 2  // iter/udp: likewise
#define KIND_TASK 3 // iter/task: one process (thread group leader)
#define KIND_FILE 4 // iter/task_file: an inet socket that a process holds

#define FLAG_V6ONLY 0x01

// The record read by record.go; keep both in step. 96 bytes, no holes.
struct record {
	__u64 inode;     // the socket's inode; 0 for kernel sockets and TIME-WAIT
	__u64 cgroup_id; // of the task, cgroup v2 (task records only)
	__u32 netns;     // inode of the socket's network namespace
	__u32 tgid;      // process id, as the initial pid namespace numbers it
	__u32 uid;
	__u32 fd;
	__u8 kind;
	__u8 proto;
	__u8 family;
	__u8 state;
	__u16 lport; // host order
	__u16 rport; // host order
	__u8 flags;
	__u8 pad[7];
	__u8 laddr[16]; // IPv4 in the first 4 bytes
	__u8 raddr[16];
	char comm[16];
};

struct record _record_unused __attribute__((unused)); // keep the type in BTF for bpf2go

static __always_inline void fill_common(struct record *r, struct sock_common *skc)
{
	r->family = BPF_CORE_READ(skc, skc_family);
	r->state = BPF_CORE_READ(skc, skc_state);
	r->lport = BPF_CORE_READ(skc, skc_num);
	r->rport = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	r->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	if (r->family == AF_INET6) {
		BPF_CORE_READ_INTO(&r->laddr, skc, skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&r->raddr, skc, skc_v6_daddr.in6_u.u6_addr8);
		if (BPF_CORE_READ_BITFIELD_PROBED(skc, skc_ipv6only))
			r->flags |= FLAG_V6ONLY;
	} else {
		__be32 a = BPF_CORE_READ(skc, skc_rcv_saddr);
		__be32 b = BPF_CORE_READ(skc, skc_daddr);
		__builtin_memcpy(r->laddr, &a, 4);
		__builtin_memcpy(r->raddr, &b, 4);
	}
}

// sock_ino is the kernel's sock_i_ino(): the inode of the socket, which a
// kernel socket has too although no file points at it. sock_diag and
// /proc/net report this one.
static __always_inline __u64 sock_ino(struct sock *sk)
{
	struct socket *sock = BPF_CORE_READ(sk, sk_socket);
	if (!sock)
		return 0;
	struct socket_alloc *sa = (void *)sock - bpf_core_field_offset(struct socket_alloc, socket);
	return BPF_CORE_READ(sa, vfs_inode.i_ino);
}

static __always_inline void fill_task(struct record *r, struct task_struct *task)
{
	r->tgid = BPF_CORE_READ(task, tgid);
	r->uid = BPF_CORE_READ(task, real_cred, uid.val);
	r->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	BPF_CORE_READ_STR_INTO(&r->comm, task, comm);
}

SEC("iter/tcp")
int dump_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct record r = {};

	if (!skc)
		return 0;
	r.kind = KIND_TCP;
	r.proto = IPPROTO_TCP;
	fill_common(&r, skc);
	// TIME-WAIT and request sockets are smaller structs with no socket
	// behind them: only a full sock has an inode.
	if (r.state != TCP_TIME_WAIT && r.state != TCP_NEW_SYN_RECV)
		r.inode = sock_ino((struct sock *)skc);
	r.uid = ctx->uid;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

SEC("iter/udp")
int dump_udp(struct bpf_iter__udp *ctx)
{
	struct sock *sk = (struct sock *)ctx->udp_sk;
	struct record r = {};

	if (!sk)
		return 0;
	r.kind = KIND_UDP;
	r.proto = IPPROTO_UDP;
	fill_common(&r, &sk->__sk_common);
	r.inode = sock_ino(sk);
	r.uid = ctx->uid;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct record r = {};

	if (!task)
		return 0;
	// One record per process: threads other than the leader are not
	// directories of /proc either.
	if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid))
		return 0;
	r.kind = KIND_TASK;
	fill_task(&r, task);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

SEC("iter/task_file")
int dump_task_file(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct record r = {};

	if (!task || !file)
		return 0;
	unsigned short mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	unsigned short family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	// An MPTCP socket's file points at the MPTCP socket, not at its TCP
	// subflow in the tables (Go listens with MPTCP by default since 1.24);
	// it shares the file's inode with the subflow, so it counts as TCP.
	if (proto == IPPROTO_MPTCP)
		proto = IPPROTO_TCP;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	r.kind = KIND_FILE;
	r.proto = proto;
	fill_common(&r, &sk->__sk_common);
	fill_task(&r, task);
	r.fd = ctx->fd;
	r.inode = BPF_CORE_READ(file, f_inode, i_ino);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
