// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mvdp's XDP program for the parent NIC.
 *
 * Frames whose destination (MAC, VLAN) belongs to an endpoint are redirected
 * to the AF_XDP socket bound to the RX queue they arrived on. Everything else
 * -- broadcast, multicast, frames for the host, frames we cannot parse -- is
 * passed to the host stack, so attaching mvdp never cuts a node off its
 * uplink; so are frames for endpoints on the tc fast path (fastpath.c), which
 * the tc program on the same interface takes after GRO. Every frame is
 * counted exactly once besides MVDP_XDP_RX, so
 *   rx = redirect + pass_host + pass_group + no_socket + short + pass_fast.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "mvdp.h"

/* 802.1Q tag as it follows the Ethernet addresses (linux/if_vlan.h is not uapi). */
struct mvdp_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

#define MVDP_VLAN_VID_MASK	0x0fff

/*
 * Not preallocated: updates come from the control plane only, and the port
 * program (which never uses this map) gets its own copy in each endpoint.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MVDP_MAX_ENDPOINTS);
	__type(key, struct mvdp_ep_key);
	__type(value, __u32);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MVDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/*
 * A passthru network: every frame on its VLAN belongs to its one endpoint.
 * Entry 0 is 0 when there is none, else MVDP_PASSTHRU_ON | VID (0: untagged).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} passthru SEC(".maps");

/* Per-CPU so the hot path needs no atomics; user space sums over CPUs. */
/*
 * Entry 0: the longest frame an AF_XDP socket takes whole (a UMEM frame
 * less its headroom), 0 for any. A longer one the kernel would drop at the
 * socket, counted only there; the program drops and counts it itself.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} xsk_limit SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MVDP_XDP_NCOUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void mvdp_count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	/* Never NULL for an in-range index, but the verifier insists. */
	if (c)
		*c += 1;
}

/* Whether the frame, all its buffers, is longer than a socket takes. */
static __always_inline int mvdp_too_long_for_xsk(struct xdp_md *ctx)
{
	__u32 zero = 0;
	const __u32 *max = bpf_map_lookup_elem(&xsk_limit, &zero);

	return max && *max && bpf_xdp_get_buff_len(ctx) > *max;
}

/* The I/G bit: set for broadcast and every multicast group address. */
static __always_inline int mvdp_is_group(const struct ethhdr *eth)
{
	return eth->h_dest[0] & 0x01;
}

/* Whether a passthru network owns frames of this VID (0: untagged). */
static __always_inline int mvdp_passthru_owns(__u16 vid)
{
	__u32 zero = 0;
	__u32 *pt = bpf_map_lookup_elem(&passthru, &zero);

	return pt && (*pt & MVDP_PASSTHRU_ON) && (*pt & MVDP_VLAN_VID_MASK) == vid;
}

/* Whether the frame's source is an endpoint whose reflected group frames are mvdp's. */
static __always_inline int mvdp_hairpin_owned(const struct ethhdr *eth, __u16 vid)
{
	struct mvdp_ep_key src = { .vlan = vid };
	__u32 *value;

	__builtin_memcpy(src.mac, eth->h_source, ETH_ALEN);
	value = bpf_map_lookup_elem(&endpoints, &src);
	return value && (*value & MVDP_EP_HAIRPIN_OWNED);
}

/*
 * Fill key from the frame's destination MAC and 802.1Q VID. Returns -1 when
 * the frame claims a tag it does not carry. Only one tag (0x8100) is read:
 * an endpoint's VLAN is the outer C-tag on the wire.
 */
static __always_inline int mvdp_parse_key(const struct ethhdr *eth,
					  const void *data_end,
					  struct mvdp_ep_key *key)
{
	const struct mvdp_vlan_hdr *vh;

	__builtin_memcpy(key->mac, eth->h_dest, ETH_ALEN);
	key->vlan = 0;
	if (eth->h_proto != bpf_htons(ETH_P_8021Q))
		return 0;

	vh = (const void *)(eth + 1);
	if ((const void *)(vh + 1) > data_end)
		return -1;
	key->vlan = bpf_ntohs(vh->tci) & MVDP_VLAN_VID_MASK;
	return 0;
}

/*
 * "xdp.frags" (BPF_F_XDP_HAS_FRAGS): the program copes with multi-buffer
 * frames, which it does by reading headers from the first buffer only.
 * Without it the kernel refuses native XDP on a veth whose peer's MTU is
 * above about 3.5 KB ("Peer MTU is too large to set XDP"): jumbo frames.
 */
SEC("xdp.frags")
int mvdp_xdp(struct xdp_md *ctx)
{
	const void *data = (const void *)(long)ctx->data;
	const void *data_end = (const void *)(long)ctx->data_end;
	const struct ethhdr *eth = data;
	struct mvdp_ep_key key;
	long action;

	mvdp_count(MVDP_XDP_RX);

	if ((const void *)(eth + 1) > data_end) {
		mvdp_count(MVDP_XDP_SHORT);
		return XDP_PASS;
	}

	if (mvdp_parse_key(eth, data_end, &key) < 0) {
		mvdp_count(MVDP_XDP_SHORT);
		return XDP_PASS;
	}

	/*
	 * The host needs ARP, ND and DHCP, and the flood path copies group
	 * frames from a packet socket, which sees only what we pass; so do
	 * passthru networks, as with the kernel. The exception: a group frame
	 * an endpoint of a private, passthru or source network sent, which a
	 * hairpinning switch reflected. The kernel hands it back to its sender
	 * alone and the host never sees it; so does mvdp.
	 */
	if (mvdp_is_group(eth)) {
		if (!mvdp_hairpin_owned(eth, key.vlan)) {
			mvdp_count(MVDP_XDP_PASS_GROUP);
			return XDP_PASS;
		}
		goto redirect;
	}

	if (!mvdp_passthru_owns(key.vlan)) {
		const __u32 *value = bpf_map_lookup_elem(&endpoints, &key);

		if (!value) {
			mvdp_count(MVDP_XDP_PASS_HOST);
			return XDP_PASS;
		}
		/* The tc program on this interface (fastpath.c) takes it, after GRO. */
		if (*value & MVDP_EP_FAST) {
			mvdp_count(MVDP_XDP_PASS_FAST);
			return XDP_PASS;
		}
	}

redirect:
	if (mvdp_too_long_for_xsk(ctx)) {
		mvdp_count(MVDP_XDP_TOO_LONG);
		return XDP_DROP;
	}
	/*
	 * The low bits of flags are the action when xsks has no socket at
	 * this index (kernel >= 5.3), so an endpoint whose queue has no
	 * socket yet still reaches the host instead of being dropped.
	 */
	action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	mvdp_count(action == XDP_REDIRECT ? MVDP_XDP_REDIRECT : MVDP_XDP_NO_SOCKET);
	return action;
}

/*
 * On the host end of an endpoint veth: everything the container sends is
 * mvdp's to check and forward, so every frame goes to the queue's socket.
 * Without one the frame is dropped, not passed: the host stack must never
 * see a container's traffic on a port it does not own.
 */
SEC("xdp.frags")
int mvdp_port(struct xdp_md *ctx)
{
	long action;

	mvdp_count(MVDP_XDP_RX);
	action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_DROP);
	mvdp_count(action == XDP_REDIRECT ? MVDP_XDP_REDIRECT : MVDP_XDP_NO_SOCKET);
	return action;
}

/* No GPL-only helpers are used; the string only has to be accepted. */
char _license[] SEC("license") = "Dual BSD/GPL";
