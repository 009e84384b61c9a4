// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mvdp's kernel fast path: tc programs that move known unicast between the
 * wire and veth endpoints, and between the veth endpoints of a bridge
 * network, without leaving the kernel.
 *
 * It is a cache of the workers' decisions (src/switch/classify.rs), not a
 * second switch: it only takes a frame when the verdict is one of the few it
 * knows how to carry out, and hands everything else to the workers. Two
 * programs share the maps that mvdp's control thread fills:
 *
 *   mvdp_tc_wire  tc ingress of the parent NIC, after GRO: unicast for a
 *                 fast endpoint loses the network's 802.1Q tag and enters the
 *                 container's interface directly (bpf_redirect_peer), as a
 *                 whole GRO super-frame. Everything else -- group frames,
 *                 frames for the host, for TAP endpoints -- goes on unchanged.
 *   mvdp_tc_port  tc ingress of each fast endpoint's veth host end: checks the
 *                 source MAC and the VLAN-hop rule, then sends the frame to
 *                 the parent (tagged with the network's VID), to a sibling
 *                 veth endpoint of a bridge network, or -- for group frames,
 *                 siblings the fast path cannot reach, rate-limited senders
 *                 and anything odd -- to the workers through the punt device,
 *                 under an 802.1ad tag that names the sender.
 *
 * Both run after the stack built an skb, so GRO, GSO/TSO and checksum
 * offload stay intact end to end, which an XDP redirect into a veth would
 * lose. Counters are per-CPU and use the workers' meanings, so mvdp's
 * metrics add the two tiers up.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "mvdp.h"

#define MVDP_VLAN_VID_MASK	0x0fff

/* Every endpoint, fast or not, by (MAC, VID): delivery and sibling checks. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MVDP_MAX_ENDPOINTS);
	__type(key, struct mvdp_ep_key);
	__type(value, struct mvdp_fp_port);
} fp_macs SEC(".maps");

/* Fast endpoints by the ifindex of their veth's host end. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MVDP_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct mvdp_fp_port);
} fp_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mvdp_fp_config);
} fp_config SEC(".maps");

/* Per-CPU so the hot path needs no atomics; user space sums over CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MVDP_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct mvdp_fp_ep_stats);
} fp_ep_stats SEC(".maps");

/* Entry 0: this CPU's counters, looked up once per frame. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mvdp_fp_counters);
} fp_counters SEC(".maps");

/* This CPU's counters; never NULL for index 0, but the verifier insists. */
static __always_inline struct mvdp_fp_counters *mvdp_fp_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&fp_counters, &zero);
}

/* Counts frames received from endpoint `id` (its container's egress). */
static __always_inline void mvdp_fp_rx(struct mvdp_fp_counters *cnt, __u16 id,
				       __u64 frames, __u64 bytes)
{
	__u32 key = id;
	struct mvdp_fp_ep_stats *st = bpf_map_lookup_elem(&fp_ep_stats, &key);

	cnt->c[MVDP_FP_RX_ENDPOINT] += frames;
	if (st) {
		st->rx_packets += frames;
		st->rx_bytes += bytes;
	}
}

/* Counts frames delivered to endpoint `id`'s container. */
static __always_inline void mvdp_fp_tx(struct mvdp_fp_counters *cnt, __u16 id,
				       __u64 frames, __u64 bytes)
{
	__u32 key = id;
	struct mvdp_fp_ep_stats *st = bpf_map_lookup_elem(&fp_ep_stats, &key);

	cnt->c[MVDP_FP_DELIVERED] += frames;
	if (st) {
		st->tx_packets += frames;
		st->tx_bytes += bytes;
	}
}

/*
 * Counts frames dropped for `reason` (a MVDP_FP_DROP_* counter) that belonged
 * to endpoint `id`: sent by it, or addressed to it. The endpoint's count
 * attributes the drop; it is not a second one.
 */
static __always_inline void mvdp_fp_drop(struct mvdp_fp_counters *cnt, __u16 id,
					 enum mvdp_fp_counter reason, __u64 frames)
{
	__u32 key = id;
	struct mvdp_fp_ep_stats *st = bpf_map_lookup_elem(&fp_ep_stats, &key);

	cnt->c[reason] += frames;
	if (st)
		st->dropped += frames;
}

/*
 * Frames an skb stands for: a GRO or GSO super-frame counts as the frames it
 * was or will be on the wire, as the workers would have counted them.
 */
static __always_inline __u64 mvdp_frames(const struct __sk_buff *skb)
{
	return skb->gso_segs ? skb->gso_segs : 1;
}

static __always_inline int mvdp_mac_eq(const __u8 *a, const __u8 *b)
{
	return ((const __u32 *)a)[0] == ((const __u32 *)b)[0] &&
	       ((const __u16 *)a)[2] == ((const __u16 *)b)[2];
}

static __always_inline const struct mvdp_fp_config *mvdp_fp_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&fp_config, &zero);
}

/*
 * The outer 802.1Q VID the stack took off the frame (the kernel moves the
 * outer tag into skb metadata before tc runs), 0 when untagged or when the
 * outer tag is not a C-tag: like the XDP program and the workers, the fast
 * path reads 0x8100 only, so an 802.1ad-tagged frame belongs to the untagged
 * network, tag and all.
 */
static __always_inline __u16 mvdp_outer_vid(const struct __sk_buff *skb)
{
	if (!skb->vlan_present || skb->vlan_proto != bpf_htons(ETH_P_8021Q))
		return 0;
	return skb->vlan_tci & MVDP_VLAN_VID_MASK;
}

/* The smallest IPv4 + UDP headers: what a GSO segment adds to gso_size at least. */
#define MVDP_MIN_L3L4_LEN	28

/*
 * Whether the frame is longer than endpoint `to` takes. bpf_redirect_peer
 * into a veth whose MTU is smaller drops it silently (is_skb_forwardable),
 * so the fast path checks and counts it, as the workers do. skb->len holds
 * the Ethernet header but not the C-tag the stack moved into metadata; a
 * tag still in the frame (a container's inner tag) may add 4 bytes. A GSO
 * super-frame is fine when its segments fit: its segment payload is checked
 * against what the MTU leaves after the smallest headers.
 */
static __always_inline int mvdp_too_long(const struct __sk_buff *skb,
					 const struct ethhdr *eth,
					 const struct mvdp_fp_port *to)
{
	__u32 max = to->max_len;

	if (!max)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_8021Q))
		max += 4;
	if (skb->gso_size)
		return skb->gso_size + ETH_HLEN + MVDP_MIN_L3L4_LEN > max;
	return skb->len > max;
}

/*
 * Whether the workers can take the frame: through the punt device it must
 * fit one UMEM frame with the punt tag and a C-tag put back; a longer one
 * the kernel would drop at the AF_XDP socket, uncounted. A GSO super-frame
 * is cut into segments on the way (the punt device has no offloads).
 */
static __always_inline int mvdp_fits_workers(const struct __sk_buff *skb,
					     const struct mvdp_fp_config *cfg)
{
	__u32 len = skb->gso_size ? skb->gso_size + ETH_HLEN + MVDP_MIN_L3L4_LEN : skb->len;

	return !cfg->punt_max_len || len <= cfg->punt_max_len;
}

/*
 * A copy of a group frame from the wire for the workers' flood path, through
 * the punt device under a punt tag marked "from the wire". The stack took
 * the frame's outer tag off; pushing the punt tag puts it back into the
 * frame (so the copy reads as it was on the wire), and popping the punt tag
 * afterwards moves it back out, leaving the frame as the host will see it.
 * A copy that cannot be made is not counted as received by anyone.
 */
static __always_inline void mvdp_copy_group(struct __sk_buff *skb,
					    struct mvdp_fp_counters *cnt)
{
	const struct mvdp_fp_config *cfg = mvdp_fp_config();

	if (!cfg || !(cfg->flags & MVDP_FP_CFG_WIRE_GROUPS))
		return;
	/* A jumbo group frame on a network whose MTU only the fast path carries. */
	if (!mvdp_fits_workers(skb, cfg)) {
		cnt->c[MVDP_FP_RX_WIRE] += 1;
		cnt->c[MVDP_FP_DROP_TOO_LONG] += 1;
		return;
	}
	if (bpf_skb_vlan_push(skb, bpf_htons(MVDP_PUNT_TPID), MVDP_PUNT_WIRE))
		return;
	if (bpf_clone_redirect(skb, cfg->punt_ifindex, 0) == 0)
		cnt->c[MVDP_FP_GROUP_COPIED] += 1;
	bpf_skb_vlan_pop(skb);
}

SEC("classifier")
int mvdp_tc_wire(struct __sk_buff *skb)
{
	const void *data = (const void *)(long)skb->data;
	const void *data_end = (const void *)(long)skb->data_end;
	const struct ethhdr *eth = data;
	struct mvdp_fp_counters *cnt = mvdp_fp_counters();
	const struct mvdp_fp_port *to, *from;
	struct mvdp_ep_key key;
	__u64 frames, bytes;
	int c_tagged;

	if (!cnt)
		return TC_ACT_UNSPEC;
	if ((const void *)(eth + 1) > data_end)
		goto pass;
	/* Broadcast and multicast: the host's, and a copy for the workers' flood path. */
	if (eth->h_dest[0] & 0x01) {
		mvdp_copy_group(skb, cnt);
		goto pass;
	}

	c_tagged = skb->vlan_present && skb->vlan_proto == bpf_htons(ETH_P_8021Q);
	key.vlan = mvdp_outer_vid(skb);
	__builtin_memcpy(key.mac, eth->h_dest, ETH_ALEN);
	to = bpf_map_lookup_elem(&fp_macs, &key);
	/* The host's own frames, and endpoints the workers serve. */
	if (!to || !(to->flags & MVDP_FP_FAST))
		goto pass;

	frames = mvdp_frames(skb);
	bytes = skb->len;
	cnt->c[MVDP_FP_RX_WIRE] += frames;

	if (mvdp_too_long(skb, eth, to)) {
		mvdp_fp_drop(cnt, to->id, MVDP_FP_DROP_TOO_LONG, frames);
		return TC_ACT_SHOT;
	}

	/*
	 * private: a sibling's frame that a hairpinning switch sent back never
	 * reaches its sibling (the workers' PrivateIsolation).
	 */
	if (to->mode == MVDP_MODE_PRIVATE) {
		__builtin_memcpy(key.mac, eth->h_source, ETH_ALEN);
		from = bpf_map_lookup_elem(&fp_macs, &key);
		if (from && from->id != to->id) {
			/* The protected endpoint's drop, as in the workers. */
			mvdp_fp_drop(cnt, to->id, MVDP_FP_DROP_PRIVATE, frames);
			return TC_ACT_SHOT;
		}
	}

	/* The network's tag stays on the wire; a priority tag (VID 0) goes too. */
	if (c_tagged && bpf_skb_vlan_pop(skb))
		return TC_ACT_SHOT;

	mvdp_fp_tx(cnt, to->id, frames, bytes);
	/* Straight into the container's interface: no backlog, no second GRO. */
	return bpf_redirect_peer(to->ifindex, 0);

pass:
	/* Not ours: on to the next tc program, or the host stack. */
	cnt->c[MVDP_FP_PASSED] += mvdp_frames(skb);
	return TC_ACT_UNSPEC;
}

/* Hands a frame to the workers, tagged with its sender's id. */
static __always_inline int mvdp_punt(struct __sk_buff *skb,
				     struct mvdp_fp_counters *cnt,
				     const struct mvdp_fp_config *cfg,
				     const struct mvdp_fp_port *me)
{
	if (!mvdp_fits_workers(skb, cfg)) {
		__u64 frames = mvdp_frames(skb);

		mvdp_fp_rx(cnt, me->id, frames, skb->len);
		mvdp_fp_drop(cnt, me->id, MVDP_FP_DROP_TOO_LONG, frames);
		return TC_ACT_SHOT;
	}
	/*
	 * A C-tag the stack took off goes back into the frame under the punt
	 * tag (the helper does that), so the workers see the frame as sent.
	 */
	if (bpf_skb_vlan_push(skb, bpf_htons(MVDP_PUNT_TPID), me->id))
		return TC_ACT_SHOT;
	cnt->c[MVDP_FP_PUNTED] += 1;
	return bpf_redirect(cfg->punt_ifindex, 0);
}

SEC("classifier")
int mvdp_tc_port(struct __sk_buff *skb)
{
	const void *data = (const void *)(long)skb->data;
	const void *data_end = (const void *)(long)skb->data_end;
	const struct ethhdr *eth = data;
	struct mvdp_fp_counters *cnt = mvdp_fp_counters();
	const struct mvdp_fp_config *cfg;
	const struct mvdp_fp_port *me, *to;
	struct mvdp_ep_key key;
	__u32 ifindex = skb->ifindex;
	__u64 frames, bytes;

	cfg = mvdp_fp_config();
	if (!cfg || !cnt)
		return TC_ACT_SHOT;
	me = bpf_map_lookup_elem(&fp_ports, &ifindex);
	if (!me) {
		/*
		 * A port whose entry is gone (being removed). The host stack
		 * must never see a container's traffic: drop it.
		 */
		cnt->c[MVDP_FP_DROP_NO_PORT] += 1;
		return TC_ACT_SHOT;
	}
	/* Rate-limited senders, and frames too odd to decide here: the workers'. */
	if ((me->flags & MVDP_FP_PUNT_EGRESS) || (const void *)(eth + 1) > data_end)
		return mvdp_punt(skb, cnt, cfg, me);

	frames = mvdp_frames(skb);
	bytes = skb->len;

	if (!mvdp_mac_eq(eth->h_source, me->mac)) {
		mvdp_fp_rx(cnt, me->id, frames, bytes);
		mvdp_fp_drop(cnt, me->id, MVDP_FP_DROP_SPOOFED, frames);
		return TC_ACT_SHOT;
	}
	if (skb->vlan_present) {
		/* On an untagged network a tag would land on another network. */
		if (!me->vlan) {
			mvdp_fp_rx(cnt, me->id, frames, bytes);
			mvdp_fp_drop(cnt, me->id, MVDP_FP_DROP_VLAN_HOP, frames);
			return TC_ACT_SHOT;
		}
		/* Inner tags on a VLAN network: rare, the workers' to carry. */
		return mvdp_punt(skb, cnt, cfg, me);
	}

	/*
	 * Group frames, in every mode: the workers copy them to the siblings
	 * (bridge) and snoop IGMP/MLD membership reports out of them.
	 */
	if (eth->h_dest[0] & 0x01)
		return mvdp_punt(skb, cnt, cfg, me);

	if (me->mode == MVDP_MODE_BRIDGE) {
		key.vlan = me->vlan;
		__builtin_memcpy(key.mac, eth->h_dest, ETH_ALEN);
		to = bpf_map_lookup_elem(&fp_macs, &key);
		if (to && to->id != me->id) {
			/* A TAP or host-shim sibling: only the workers reach it. */
			if (!(to->flags & MVDP_FP_FAST))
				return mvdp_punt(skb, cnt, cfg, me);
			mvdp_fp_rx(cnt, me->id, frames, bytes);
			if (mvdp_too_long(skb, eth, to)) {
				mvdp_fp_drop(cnt, to->id, MVDP_FP_DROP_TOO_LONG, frames);
				return TC_ACT_SHOT;
			}
			mvdp_fp_tx(cnt, to->id, frames, bytes);
			return bpf_redirect_peer(to->ifindex, 0);
		}
	}

	/* Everything else leaves through the parent, tagged for the network. */
	mvdp_fp_rx(cnt, me->id, frames, bytes);
	if (me->vlan && bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), me->vlan))
		return TC_ACT_SHOT;
	cnt->c[MVDP_FP_DELIVERED] += frames;
	cnt->c[MVDP_FP_WIRE_TX] += frames;
	return bpf_redirect(cfg->parent_ifindex, 0);
}

/* No GPL-only helpers are used; the string only has to be accepted. */
char _license[] SEC("license") = "Dual BSD/GPL";
