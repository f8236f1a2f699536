/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * The few kernel types the programs read, declared by hand with
 * preserve_access_index. CO-RE relocates each field access against the
 * running kernel's BTF at load time, so these need only name the fields,
 * not match the kernel's layout. A header generated from one kernel's BTF
 * would be 3 MB of text that changes with every kernel; this one keeps the
 * generated objects reproducible on any build machine.
 */
#ifndef PORTEIRO_CORE_H
#define PORTEIRO_CORE_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

/* From include/uapi/linux/bpf.h: only what the programs use. */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_F_NO_PREALLOC = 1,
};

/* The context of cgroup/post_bind4, post_bind6 and sock_release. */
struct bpf_sock {
	__u32 bound_dev_if;
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 mark;
	__u32 priority;
	__u32 src_ip4;
	__u32 src_ip6[4];
	__u32 src_port;
	__be16 dst_port;
	__u16 :16;
	__u32 dst_ip4;
	__u32 dst_ip6[4];
	__u32 state;
	__s32 rx_queue_mapping;
};

/* The context of sockops, up to the last field the program reads. */
struct bpf_sock_ops {
	__u32 op;
	__u32 args[4];
	__u32 family;
	__u32 remote_ip4;
	__u32 local_ip4;
	__u32 remote_ip6[4];
	__u32 local_ip6[4];
	__u32 remote_port;
	__u32 local_port; /* host order */
};

enum {
	BPF_SOCK_OPS_TCP_LISTEN_CB = 11,
};

/* Filled by bpf_get_ns_current_pid_tgid. */
struct bpf_pidns_info {
	__u32 pid;
	__u32 tgid;
};

/* Kernel types, relocated by CO-RE. Anonymous unions of the kernel's
 * definitions are flattened here: relocation finds a field inside them by
 * name. */
struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
} __attribute__((preserve_access_index));

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} __attribute__((preserve_access_index)) possible_net_t;

struct sock_common {
	__be32 skc_rcv_saddr;
	__u16 skc_num;
	unsigned short skc_family;
	unsigned char skc_reuse : 4;
	unsigned char skc_reuseport : 1;
	unsigned char skc_ipv6only : 1;
	possible_net_t skc_net;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
} __attribute__((preserve_access_index));

struct socket {
	struct file *file;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	struct socket *sk_socket;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

/* The local port survives here after a listener's close has cleared
 * skc_num (inet_put_port runs before the state changes to TCP_CLOSE). */
struct inet_sock {
	struct sock sk;
	__be16 inet_sport;
} __attribute__((preserve_access_index));

/* The byte counters of a TCP connection, the same ones sock_diag reports
 * as tcpi_bytes_received and tcpi_bytes_acked. */
struct tcp_sock {
	__u64 bytes_received;
	__u64 bytes_acked;
} __attribute__((preserve_access_index));

#endif
