// SPDX-License-Identifier: GPL-2.0
/*
 * Fulcrum's XDP fast path for LVS-DR (and LVS-TUN over VXLAN): the data the director
 * decided (services, slot tables, real servers) is in maps the TypeScript plane writes by
 * element (src/dataplane/xdp); this program only looks things up.
 *
 * Per packet: Ethernet → IPv4/IPv6 → TCP/UDP; the (VIP, protocol, port) or (VIP,
 * protocol, any port) service; the connection table (an established flow keeps its real
 * server through weight and membership changes); else a persistence template; else a slot
 * of the service's table (round robin per CPU, or a hash of the source / destination).
 * DR rewrites the Ethernet addresses to the real server's (resolved by the plane from the
 * kernel's neighbour table) and transmits; TUN wraps the frame in VXLAN to the real
 * server. Anything that is not for a service passes to the kernel untouched.
 *
 * Two programs: `xdp_root` is what is attached to a device and never changes; it
 * tail-calls `xdp_balancer` through the pinned `root_progs` array, so a new balancer (an
 * upgrade) is swapped in by one map update and no packet is dropped.
 *
 * The layouts below are mirrored byte for byte by src/dataplane/xdp/layout.ts.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_SERVICES 512
#define MAX_SLOTS 256
#define MAX_BACKENDS 4096
#define MAX_CONNS (1 << 20)
#define MAX_TEMPLATES (1 << 18)

#define FAM_INET 4
#define FAM_INET6 6

/* How a new flow picks a slot. */
#define HASH_RR 0
#define HASH_SRC 1
#define HASH_SRC_PORT 2
#define HASH_DST 3

/* Service flags. */
#define SF_PERSIST 1
#define SF_OPS 2

/* Backend flags. */
#define BF_LIVE 1     /* in the service (removed servers keep forwarding their flows) */
#define BF_RESOLVED 2 /* the neighbour is known: macs are valid */
#define BF_TUN 4

/* Connection flags. */
#define CF_CLOSING 1
#define CF_SYN 2 /* only the client's SYN seen so far: IPVS's SYN_RECV, a short timeout */

/* Seconds a flow that has sent only its SYN is kept (IPVS's SYN_RECV timeout), so a SYN
 * flood's entries go long before an established flow's would. */
#define SYN_TIMEOUT 60

/* Per-reason counters (xstats). */
#define X_FORWARDED 0
#define X_NO_SERVER 1
#define X_NO_NEIGH 2
#define X_MALFORMED 3
#define X_TX_FAIL 4
#define X_NEW 5
#define X_MAX 8

struct svc_key {
	__u32 addr[4]; /* network order; IPv4 in addr[0] */
	__u16 port;    /* network order; 0 = any port */
	__u8 proto;
	__u8 family;
};

struct svc_val {
	__u32 id; /* 1..MAX_SERVICES-1: index of its slot table and counters */
	__u32 size; /* slots in use */
	__u32 hash;
	__u32 flags;
	__u32 pmask[4]; /* persistence netmask, network order */
	__u32 ptimeout; /* seconds */
	__u32 tcp_timeout;
	__u32 fin_timeout;
	__u32 udp_timeout;
	__u32 seed; /* hash_seed: directors that must agree hash alike */
};

struct backend {
	__u32 addr[4];
	__u8 family;
	__u8 flags;
	__u8 dmac[6];
	__u8 smac[6];
	__u16 svc; /* its service's id (a new run takes over backends by service and address) */
	__u32 ifindex;
	/* TUN (VXLAN): outer source address, network identifier, inner destination MAC. */
	__u32 src[4];
	__u32 vni;
	__u8 tmac[6];
	__u16 pad2;
};

struct conn_key {
	__u32 saddr[4];
	__u32 svc;
	__u16 sport;
	__u16 dport;
};

struct conn_val {
	__u32 backend;
	__u32 flags;
	__u64 last_ns;
	__u64 pkts; /* packets seen, up to 64 (connection sync sends a flow once it has sync_threshold) */
};

/* A device the program is attached to: frames not addressed to its MAC are not ours. */
struct device {
	__u8 mac[6];
	__u16 pad;
};

struct tpl_key {
	__u32 addr[4]; /* the client's address masked by the service's netmask */
	__u32 svc;
};

struct tpl_val {
	__u32 backend;
	__u32 pad;
	__u64 last_ns;
};

struct counters {
	__u64 conns;
	__u64 pkts;
	__u64 bytes;
	__u64 dropped; /* services: packets dropped for want of a (resolved) real server */
};

#define PIN __uint(pinning, LIBBPF_PIN_BY_NAME)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4 * MAX_SERVICES);
	__type(key, struct svc_key);
	__type(value, struct svc_val);
	PIN;
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SERVICES * MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	PIN;
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
	PIN;
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU); /* an LRU list per CPU */
	__uint(max_entries, MAX_CONNS);
	__type(key, struct conn_key);
	__type(value, struct conn_val);
	PIN;
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_TEMPLATES);
	__type(key, struct tpl_key);
	__type(value, struct tpl_val);
	PIN;
} templates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
	PIN;
} rr_cursor SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct counters);
	PIN;
} svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct counters);
	PIN;
} be_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, X_MAX);
	__type(key, __u32);
	__type(value, __u64);
	PIN;
} xstats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct device);
	PIN;
} devices SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	PIN;
} root_progs SEC(".maps");

static __always_inline void xcount(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&xstats, &reason);
	if (v)
		*v += 1;
}

static __always_inline void count_drop(__u32 sid)
{
	struct counters *c = bpf_map_lookup_elem(&svc_stats, &sid);
	if (c)
		c->dropped += 1;
}

static __always_inline void count(void *map, __u32 idx, __u64 bytes, int new_conn)
{
	struct counters *c = bpf_map_lookup_elem(map, &idx);
	if (!c)
		return;
	c->pkts += 1;
	c->bytes += bytes;
	if (new_conn)
		c->conns += 1;
}

/* A 32-bit mix of the flow fields a hash scheduler uses (Jenkins' final mix). */
static __always_inline __u32 mix(__u32 a, __u32 b, __u32 c)
{
	c ^= b; c -= (b << 14) | (b >> 18);
	a ^= c; a -= (c << 11) | (c >> 21);
	b ^= a; b -= (a << 25) | (a >> 7);
	c ^= b; c -= (b << 16) | (b >> 16);
	a ^= c; a -= (c << 4) | (c >> 28);
	b ^= a; b -= (a << 14) | (a >> 18);
	c ^= b; c -= (b << 24) | (b >> 8);
	return c;
}

static __always_inline __u32 hash_addr(const __u32 *a, __u32 seed)
{
	return mix(a[0] ^ a[2], a[1] ^ a[3], seed);
}

/* Byte by byte: clang has no inline memcmp for the BPF target. */
static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5])) == 0;
}

struct flow {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 syn;
	__u8 fin;
};

/* The template of a flow's client: its address masked by the service's netmask. */
static __always_inline void template_key(struct tpl_key *k, const struct svc_val *svc, const struct flow *f, __u32 sid)
{
	k->addr[0] = f->saddr[0] & svc->pmask[0];
	k->addr[1] = f->saddr[1] & svc->pmask[1];
	k->addr[2] = f->saddr[2] & svc->pmask[2];
	k->addr[3] = f->saddr[3] & svc->pmask[3];
	k->svc = sid;
}

static __always_inline int timed_out(__u64 now, __u64 last, __u32 seconds)
{
	return now - last > (__u64)seconds * 1000000000ULL;
}

/* The slot table's choice for a new flow; 0 = no real server. */
static __always_inline __u32 schedule(const struct svc_val *svc, const struct flow *f)
{
	__u32 size = svc->size;
	__u32 slot;
	if (size == 0 || size > MAX_SLOTS)
		return 0;
	if (svc->hash == HASH_RR && f->proto == IPPROTO_TCP && !f->syn) {
		/* A mid-stream packet of a flow nobody here scheduled (a takeover without sync):
		 * hashed, not dealt, so every director with the same table and seed agrees. */
		slot = mix(f->saddr[0] ^ f->saddr[2], f->saddr[1] ^ f->saddr[3], f->sport ^ svc->seed) % size;
	} else if (svc->hash == HASH_RR) {
		__u32 id = svc->id;
		__u32 *cur = bpf_map_lookup_elem(&rr_cursor, &id);
		if (!cur)
			return 0;
		slot = *cur % size;
		*cur = slot + 1;
	} else if (svc->hash == HASH_SRC) {
		slot = hash_addr(f->saddr, svc->seed) % size;
	} else if (svc->hash == HASH_SRC_PORT) {
		slot = mix(f->saddr[0] ^ f->saddr[2], f->saddr[1] ^ f->saddr[3], f->sport ^ svc->seed) % size;
	} else {
		slot = hash_addr(f->daddr, svc->seed) % size;
	}
	__u32 idx = svc->id * MAX_SLOTS + (slot & (MAX_SLOTS - 1));
	__u32 *be = bpf_map_lookup_elem(&slots, &idx);
	return be ? *be : 0;
}

static __always_inline int csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

#define VXLAN_PORT 4789
#define ENCAP_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) + 8)

struct vxlanhdr {
	__be32 flags;
	__be32 vni;
};

/* Wrap the whole frame in Ethernet/IPv4/UDP/VXLAN to an IPv4 real server. */
static __always_inline int encap_vxlan(struct xdp_md *ctx, const struct backend *be, __u32 inner_len, __u16 sport)
{
	if (bpf_xdp_adjust_head(ctx, -(int)ENCAP_LEN))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = (void *)(ip + 1);
	struct vxlanhdr *vx = (void *)(udp + 1);
	struct ethhdr *inner = (void *)(vx + 1);
	if ((void *)(inner + 1) > end)
		return -1;
	__builtin_memcpy(eth->h_dest, be->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, be->smac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(inner_len + ENCAP_LEN - sizeof(struct ethhdr));
	ip->id = 0;
	ip->frag_off = bpf_htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = be->src[0];
	ip->daddr = be->addr[0];
	__u64 sum = 0;
	__u16 *w = (__u16 *)ip;
#pragma unroll
	for (int i = 0; i < (int)(sizeof(struct iphdr) / 2); i++)
		sum += w[i];
	ip->check = csum_fold(sum);
	udp->source = bpf_htons(49152 | (sport & 0x3fff));
	udp->dest = bpf_htons(VXLAN_PORT);
	udp->len = bpf_htons(inner_len + sizeof(struct udphdr) + 8);
	udp->check = 0;
	vx->flags = bpf_htonl(0x08000000);
	vx->vni = bpf_htonl(be->vni << 8);
	__builtin_memcpy(inner->h_dest, be->tmac, ETH_ALEN);
	__builtin_memcpy(inner->h_source, be->smac, ETH_ALEN);
	return 0;
}

SEC("xdp")
int xdp_balancer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct flow f = {};
	void *l4;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	/* A frame for another host (flooded by a switch, or seen in promiscuous mode) is not
	 * ours to forward: a backup director must not duplicate the master's traffic. */
	__u32 ifindex_in = ctx->ingress_ifindex;
	struct device *dev = bpf_map_lookup_elem(&devices, &ifindex_in);
	if (!dev || !mac_equal(dev->mac, eth->h_dest))
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5) {
			xcount(X_MALFORMED); /* the kernel drops it and counts it too */
			return XDP_PASS;
		}
		if (ip->frag_off & bpf_htons(0x3fff))
			return XDP_PASS; /* fragments carry no ports: the kernel's business */
		f.family = FAM_INET;
		f.proto = ip->protocol;
		f.saddr[0] = ip->saddr;
		f.daddr[0] = ip->daddr;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end) {
			xcount(X_MALFORMED);
			return XDP_PASS;
		}
		f.family = FAM_INET6;
		f.proto = ip6->nexthdr;
		__builtin_memcpy(f.saddr, &ip6->saddr, 16);
		__builtin_memcpy(f.daddr, &ip6->daddr, 16);
		l4 = (void *)(ip6 + 1);
	} else {
		return XDP_PASS;
	}
	if (f.proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end) {
			xcount(X_MALFORMED);
			return XDP_PASS;
		}
		f.sport = th->source;
		f.dport = th->dest;
		f.syn = th->syn && !th->ack;
		f.fin = th->fin || th->rst;
	} else if (f.proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end) {
			xcount(X_MALFORMED);
			return XDP_PASS;
		}
		f.sport = uh->source;
		f.dport = uh->dest;
	} else {
		return XDP_PASS;
	}

	struct svc_key sk = {};
	__builtin_memcpy(sk.addr, f.daddr, 16);
	sk.proto = f.proto;
	sk.family = f.family;
	sk.port = f.dport;
	struct svc_val *svc = bpf_map_lookup_elem(&services, &sk);
	if (!svc) {
		sk.port = 0;
		svc = bpf_map_lookup_elem(&services, &sk);
		if (!svc)
			return XDP_PASS;
	}
	__u32 sid = svc->id;
	if (sid == 0 || sid >= MAX_SERVICES)
		return XDP_PASS;
	__u64 bytes = end - data;
	__u64 now = bpf_ktime_get_ns();

	struct conn_key ck = {};
	__builtin_memcpy(ck.saddr, f.saddr, 16);
	ck.svc = sid;
	ck.sport = f.sport;
	ck.dport = f.dport;
	__u32 bid = 0;
	int new_conn = 0;
	struct conn_val *cv = bpf_map_lookup_elem(&conns, &ck);
	if (cv) {
		__u32 limit = f.proto == IPPROTO_UDP ? svc->udp_timeout : (cv->flags & CF_CLOSING) ? svc->fin_timeout
			: (cv->flags & CF_SYN) ? SYN_TIMEOUT : svc->tcp_timeout;
		/* An expired flow, or a new TCP connection reusing a closing one's ports, is scheduled afresh. */
		if (timed_out(now, cv->last_ns, limit) || (f.syn && (cv->flags & CF_CLOSING)))
			cv = NULL;
		else
			bid = cv->backend;
	}
	if (!cv) {
		/* A mid-stream TCP packet of a flow this director does not know (a takeover without
		 * sync, an evicted entry) is scheduled like a new one, as IPVS with sloppy_tcp. */
		struct tpl_key tk = {};
		struct tpl_val *tv = NULL;
		if (svc->flags & SF_PERSIST) {
			template_key(&tk, svc, &f, sid);
			tv = bpf_map_lookup_elem(&templates, &tk);
			if (tv && !timed_out(now, tv->last_ns, svc->ptimeout)) {
				__u32 tb = tv->backend;
				struct backend *b = bpf_map_lookup_elem(&backends, &tb);
				if (b && (b->flags & BF_LIVE))
					bid = tb;
			}
		}
		if (bid == 0)
			bid = schedule(svc, &f);
		if (bid == 0) {
			xcount(X_NO_SERVER);
			count_drop(sid);
			return XDP_DROP;
		}
		if (svc->flags & SF_PERSIST) {
			struct tpl_val nt = { .backend = bid, .last_ns = now };
			bpf_map_update_elem(&templates, &tk, &nt, BPF_ANY);
		}
		new_conn = 1;
		if (!(svc->flags & SF_OPS)) {
			struct conn_val nv = { .backend = bid, .flags = f.fin ? CF_CLOSING : f.syn ? CF_SYN : 0, .last_ns = now, .pkts = 1 };
			bpf_map_update_elem(&conns, &ck, &nv, BPF_ANY);
		}
		xcount(X_NEW);
	} else {
		/* Refresh at most every 100 ms: a write per packet would bounce the cache line. A
		 * persistent service's template lives as long as its connections carry traffic
		 * (IPVS keeps a template while connections it controls exist). */
		if (now - cv->last_ns > 100000000ULL) {
			cv->last_ns = now;
			if (svc->flags & SF_PERSIST) {
				struct tpl_key rk = {};
				template_key(&rk, svc, &f, sid);
				struct tpl_val *rv = bpf_map_lookup_elem(&templates, &rk);
				if (rv && rv->backend == cv->backend)
					rv->last_ns = now;
			}
		}
		/* Counted up to 64 only (enough for the sync threshold), then no more writes. */
		if (cv->pkts < 64)
			cv->pkts += 1;
		if (f.fin && !(cv->flags & CF_CLOSING)) {
			cv->flags |= CF_CLOSING;
			cv->last_ns = now;
		}
		/* The client's first packet after its SYN: the handshake went through. */
		if (!f.syn && (cv->flags & CF_SYN)) {
			cv->flags &= ~CF_SYN;
			cv->last_ns = now;
		}
	}

	struct backend *be = bpf_map_lookup_elem(&backends, &bid);
	if (!be || !(be->flags & BF_RESOLVED)) {
		xcount(X_NO_NEIGH);
		count_drop(sid);
		return XDP_DROP;
	}
	count(&svc_stats, sid, bytes, new_conn);
	count(&be_stats, bid, bytes, new_conn);
	__u32 ifindex = be->ifindex;
	if (be->flags & BF_TUN) {
		if (be->family != FAM_INET || encap_vxlan(ctx, be, (__u32)bytes, f.sport) < 0) {
			xcount(X_TX_FAIL);
			return XDP_DROP;
		}
	} else {
		__builtin_memcpy(eth->h_dest, be->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, be->smac, ETH_ALEN);
	}
	xcount(X_FORWARDED);
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

SEC("xdp")
int xdp_root(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &root_progs, 0);
	/* No balancer installed (between runs): the kernel handles everything. */
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
