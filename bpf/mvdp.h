/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Layouts shared between the XDP program (mvdp.c) and user space
 * (src/io/xdp.rs). Change both sides together: the Rust side mirrors every
 * struct and enum here, and a unit test there checks the enum order.
 */
#ifndef MVDP_H
#define MVDP_H

#include <linux/types.h>

/*
 * Capacity of the endpoints maps: one entry per endpoint id. 4096 container
 * endpoints plus 64 host shims: ENDPOINT_SLOTS in src/switch/fdb.rs (a unit
 * test there holds the two equal).
 */
#define MVDP_MAX_ENDPOINTS	4160
/* Capacity of the xsks map: one AF_XDP socket per RX queue. */
#define MVDP_MAX_QUEUES		64

/*
 * Key of the endpoints map. 8 bytes, no padding, so user space can hash the
 * same bytes the kernel does. vlan is the 802.1Q VID in host byte order;
 * 0 means untagged (or priority-tagged, VID 0).
 */
struct mvdp_ep_key {
	__u8 mac[6];
	__u16 vlan;
};

/*
 * Set in an endpoints map value (beside the endpoint id) when group frames
 * from that MAC, reflected by the wire, go to mvdp rather than the host.
 */
#define MVDP_EP_HAIRPIN_OWNED	0x80000000u

/* Set in the passthru map's entry when a passthru network exists (low 12 bits: its VID). */
#define MVDP_PASSTHRU_ON	0x10000

/*
 * Set in an endpoints map value when the endpoint's unicast takes the tc fast
 * path (bpf/fastpath.c): the XDP program passes it on instead of redirecting.
 */
#define MVDP_EP_FAST		0x40000000u

/* Indices of the per-CPU counters map. */
enum mvdp_xdp_counter {
	MVDP_XDP_RX = 0,	/* every frame seen */
	MVDP_XDP_REDIRECT,	/* sent to an AF_XDP socket */
	MVDP_XDP_PASS_HOST,	/* not for an endpoint: host stack */
	MVDP_XDP_PASS_GROUP,	/* broadcast/multicast: host stack + packet socket copy */
	MVDP_XDP_NO_SOCKET,	/* endpoint MAC but no socket on this queue: host stack */
	MVDP_XDP_SHORT,		/* runt or truncated 802.1Q tag: host stack */
	MVDP_XDP_PASS_FAST,	/* unicast for a fast-path endpoint: on to the tc program */
	MVDP_XDP_TOO_LONG,	/* for a socket, but longer than a UMEM frame holds: dropped */
	MVDP_XDP_NCOUNTERS,
};

/*
 * The tc fast path (bpf/fastpath.c).
 */

/* Modes, as src/config's `Mode` (macvlan's semantics). */
enum mvdp_mode {
	MVDP_MODE_BRIDGE = 0,
	MVDP_MODE_PRIVATE,
	MVDP_MODE_VEPA,
	MVDP_MODE_PASSTHRU,
	MVDP_MODE_SOURCE,
};

/* mvdp_fp_port.flags */
/* The fast path delivers to this endpoint (a veth in another namespace). */
#define MVDP_FP_FAST		0x01
/* Everything the endpoint sends goes to the workers (it has a rate limit). */
#define MVDP_FP_PUNT_EGRESS	0x02

/*
 * One endpoint as the fast path sees it: the value of both the by-MAC map
 * (every endpoint, fast or not) and the by-port map (fast endpoints only,
 * keyed by the ifindex of the veth's host end). 20 bytes, no padding holes.
 */
struct mvdp_fp_port {
	__u32 ifindex;		/* the veth's host end, in mvdp's namespace */
	__u16 id;		/* endpoint id: counters, and the punt tag's VID */
	__u16 vlan;		/* the network's VID (0: untagged) */
	__u16 network;		/* network id */
	__u8 mode;		/* enum mvdp_mode */
	__u8 flags;		/* MVDP_FP_* */
	__u8 mac[6];		/* the container interface's MAC */
	__u16 max_len;		/* longest frame it takes, untagged: its network's MTU + 14 (0: any) */
};

/* mvdp_fp_config.flags: copy the wire's group frames to the workers (punt). */
#define MVDP_FP_CFG_WIRE_GROUPS	0x01

/* Entry 0 of the fast path's config map. */
struct mvdp_fp_config {
	__u32 parent_ifindex;	/* container egress for the wire leaves here */
	__u32 punt_ifindex;	/* frames for the workers: tagged with the sender's id, sent here */
	__u32 flags;		/* MVDP_FP_CFG_* */
	__u32 punt_max_len;	/* longest frame the workers take (Ethernet header in, tags out); 0: any */
};

/*
 * Per-endpoint, per-CPU counters of the fast path (same meaning as the
 * workers'). A frame in `dropped` is also under its MVDP_FP_DROP_* counter.
 */
struct mvdp_fp_ep_stats {
	__u64 rx_packets;	/* from the container */
	__u64 rx_bytes;
	__u64 tx_packets;	/* to the container */
	__u64 tx_bytes;
	__u64 dropped;		/* sent by it or addressed to it, dropped */
};

/*
 * Indices of the fast path's per-CPU counters. Frames the fast path hands
 * to the workers (punted) are counted by the workers, not as received here.
 */
enum mvdp_fp_counter {
	MVDP_FP_RX_WIRE = 0,	/* from the wire, decided here */
	MVDP_FP_RX_ENDPOINT,	/* from a container, decided here */
	MVDP_FP_DELIVERED,	/* redirected to a container or the parent */
	MVDP_FP_WIRE_TX,	/* of those, to the parent */
	MVDP_FP_PUNTED,		/* handed to the workers (not counted as received) */
	MVDP_FP_GROUP_COPIED,	/* wire group frames copied to the workers (and passed on) */
	MVDP_FP_PASSED,		/* from the wire, not for a fast endpoint: left to the host */
	MVDP_FP_DROP_SPOOFED,	/* DropReason::SpoofedSource */
	MVDP_FP_DROP_VLAN_HOP,	/* DropReason::VlanHop */
	MVDP_FP_DROP_PRIVATE,	/* DropReason::PrivateIsolation */
	MVDP_FP_DROP_NO_PORT,	/* DropReason::EndpointGone: a port with no entry (being removed) */
	MVDP_FP_DROP_TOO_LONG,	/* DropReason::TooLong: above the endpoint's MTU */
	MVDP_FP_NCOUNTERS,
};

/* The fast path's counters on one CPU: one map lookup per frame for all. */
struct mvdp_fp_counters {
	__u64 c[MVDP_FP_NCOUNTERS];
};

/*
 * The punt tag: an 802.1ad tag whose VID is the sending endpoint's id, or,
 * with MVDP_PUNT_WIRE (the DEI bit) set, a copy of a group frame from the wire.
 */
#define MVDP_PUNT_TPID		0x88a8
#define MVDP_PUNT_WIRE		0x1000

#endif /* MVDP_H */
