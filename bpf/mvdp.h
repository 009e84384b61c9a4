/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Layouts shared between the XDP program (mvdp.c) and user space
 * (src/io/xdp.rs). Change both sides together: the Rust side mirrors every
 * struct and enum here, and a unit test there checks the enum order.
 */
#ifndef MVDP_H
#define MVDP_H

#include <linux/types.h>

/* Capacity of the endpoints map: one entry per (MAC, VLAN) endpoint. */
#define MVDP_MAX_ENDPOINTS	4096
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

/* Indices of the per-CPU counters map. */
enum mvdp_xdp_counter {
	MVDP_XDP_RX = 0,	/* every frame seen */
	MVDP_XDP_REDIRECT,	/* sent to an AF_XDP socket */
	MVDP_XDP_PASS_HOST,	/* not for an endpoint: host stack */
	MVDP_XDP_PASS_GROUP,	/* broadcast/multicast: host stack + packet socket copy */
	MVDP_XDP_NO_SOCKET,	/* endpoint MAC but no socket on this queue: host stack */
	MVDP_XDP_SHORT,		/* runt or truncated 802.1Q tag: host stack */
	MVDP_XDP_NCOUNTERS,
};

#endif /* MVDP_H */
