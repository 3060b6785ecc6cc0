// SPDX-License-Identifier: GPL-2.0
/*
 * Passes every packet. A veth only takes frames its peer sends with XDP_TX when it runs
 * NAPI, which an attached XDP program turns on: the test labs attach this to the switch
 * port of a director running the XDP plane.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
