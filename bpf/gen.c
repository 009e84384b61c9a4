// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The bench's NIC-like traffic generator (src/bench/nicgen.rs).
 *
 * mvdp bench runs this program with BPF_PROG_RUN and
 * BPF_F_TEST_XDP_LIVE_FRAMES on the wire end of the rig's veth: the kernel
 * builds each frame in a page-pool page and the XDP_TX verdict sends it out
 * of that veth as an XDP frame, so the parent receives it the way a NIC
 * driver hands frames to XDP (and to GRO), not as an skb from a socket.
 * Each run rewrites the destination MAC, round-robin over `gen_dsts`, so one
 * template frame spreads over every container.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

/* Destination MACs, `gen_count[0]` of them used, in order. */
#define MVDP_GEN_MAX_DSTS	4096

struct mvdp_gen_mac {
	__u8 mac[6];
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MVDP_GEN_MAX_DSTS);
	__type(key, __u32);
	__type(value, struct mvdp_gen_mac);
} gen_dsts SEC(".maps");

/* Entry 0: how many of gen_dsts are in use. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} gen_count SEC(".maps");

/* Per-CPU frame sequence: picks the destination, and counts what was sent. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gen_seq SEC(".maps");

SEC("xdp")
int mvdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct mvdp_gen_mac *dst;
	__u32 zero = 0, *count, idx;
	__u64 *seq;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	seq = bpf_map_lookup_elem(&gen_seq, &zero);
	count = bpf_map_lookup_elem(&gen_count, &zero);
	if (!seq || !count || !*count)
		return XDP_ABORTED;
	idx = (__u32)(*seq % *count);
	*seq += 1;
	dst = bpf_map_lookup_elem(&gen_dsts, &idx);
	if (!dst)
		return XDP_ABORTED;
	__builtin_memcpy(eth->h_dest, dst->mac, ETH_ALEN);
	return XDP_TX;
}

char _license[] SEC("license") = "Dual BSD/GPL";
