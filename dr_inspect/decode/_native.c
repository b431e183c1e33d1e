/* Compiled kernels of the decoder: the classic pcap record walk (pcap_walk) and pcapng block walk
 * (pcapng_walk), the per-frame field decode of ordinary Ethernet frames (decode_frames), and
 * the pcap walk and field decode in one pass over a file (pcap_decode: each frame is decoded
 * while its bytes are in cache).
 *
 * Both are optional: dr_inspect/decode/native.py uses them when this module was built and falls
 * back to the numpy code otherwise, which stays the reference. The field decode handles only
 * frames it can decode completely (Ethernet, up to four VLAN tags, IPv4 with any options, IPv6
 * without extension headers, TCP, UDP, ICMPv4, ARP, other ethertypes and protocols as "no more
 * fields") and marks every other frame "slow": a frame with another link type, anything cut
 * short, a bad header length or version, IPv6 extension headers, ICMPv6. Those are decoded by
 * layers.py, so every odd case has exactly one implementation.
 *
 * No numpy C API: arrays come in through the buffer protocol, allocated by the caller. The GIL
 * is released while the loops run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { OK = 0, INCOMPLETE = 1, INVALID = 2, STOP = 3 };
#define PREFETCH_BYTES 4096

static inline uint32_t be16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t be48(const uint8_t *p) {
    return ((uint64_t)be16(p) << 32) | be32(p + 2);
}
static inline uint32_t u32(const uint8_t *p, int little) {
    return little ? ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0]
                  : be32(p);
}

/* Release the buffers an argument parse took (every function ends so). */
#define release(...)                                                                           \
    do {                                                                                       \
        Py_buffer *taken_[] = {__VA_ARGS__};                                                   \
        for (size_t k_ = 0; k_ < sizeof taken_ / sizeof *taken_; k_++)                         \
            PyBuffer_Release(taken_[k_]);                                                      \
    } while (0)

/* ------------------------------------------------------------------ classic pcap record walk */

static int check_out(Py_buffer *b, Py_ssize_t itemsize, Py_ssize_t n, const char *what) {
    if (b->len < n * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, %zd needed", what, b->len,
                     n * itemsize);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(pcap_walk_doc,
"pcap_walk(buf, start, hdrlen, little, max_caplen, frac_ns, pos, caplen, wirelen, ts_ns)\n"
"Walk the records of buf from start. The four int64 outputs must hold\n"
"(len(buf) - start) // hdrlen + 1 entries. Returns (count, end, status): status 0 when the\n"
"chain reached the end of buf, 1 when the record at end is incomplete, 2 when its caplen is\n"
"above max_caplen.");

static PyObject *pcap_walk(PyObject *self, PyObject *args) {
    Py_buffer buf, pos_b, cap_b, wire_b, ts_b;
    Py_ssize_t start, hdrlen, max_caplen;
    long long frac_ns;
    int little;
    if (!PyArg_ParseTuple(args, "y*nnpnLw*w*w*w*", &buf, &start, &hdrlen, &little, &max_caplen,
                          &frac_ns, &pos_b, &cap_b, &wire_b, &ts_b))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = buf.len;
    if (hdrlen < 16 || start < 0 || start > n) {
        PyErr_SetString(PyExc_ValueError, "bad start or header length");
        goto done;
    }
    const Py_ssize_t room = (n - start) / hdrlen + 1;
    if (check_out(&pos_b, 8, room, "pos") || check_out(&cap_b, 8, room, "caplen")
        || check_out(&wire_b, 8, room, "wirelen") || check_out(&ts_b, 8, room, "ts_ns"))
        goto done;
    const uint8_t *b = buf.buf;
    int64_t *pos_o = pos_b.buf, *cap_o = cap_b.buf, *wire_o = wire_b.buf, *ts_o = ts_b.buf;
    Py_ssize_t p = start, count = 0;
    int status = OK;
    Py_BEGIN_ALLOW_THREADS
    while (p < n) {
        if (p + hdrlen > n) { status = INCOMPLETE; break; }
        const uint8_t *h = b + p;
        const int64_t cap = u32(h + 8, little);
        if (cap > max_caplen) { status = INVALID; break; }
        if (p + hdrlen + cap > n) { status = INCOMPLETE; break; }
        pos_o[count] = p;
        cap_o[count] = cap;
        wire_o[count] = u32(h + 12, little);
        ts_o[count] = (int64_t)u32(h, little) * 1000000000LL + (int64_t)u32(h + 4, little) * frac_ns;
        count++;
        p += hdrlen + cap;
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nni", count, p, status);
done:
    release(&buf, &pos_b, &cap_b, &wire_b, &ts_b);
    return result;
}

PyDoc_STRVAR(pcapng_walk_doc,
"pcapng_walk(buf, start, little, max_block, pos, btype, btl) -> (count, end, status)\n"
"Walk the pcapng blocks of buf from start, within one section: a section header block stops\n"
"the walk (status 3). The int64 outputs (position, block type, block total length) must hold\n"
"(len(buf) - start) // 12 + 1 entries. Status 0 when the chain reached the end of buf, 1 when\n"
"the block at end is incomplete, 2 when its length is not a multiple of 4 in [12, max_block]\n"
"or its trailing length differs.");

static PyObject *pcapng_walk(PyObject *self, PyObject *args) {
    Py_buffer buf, pos_b, type_b, len_b;
    Py_ssize_t start, max_block;
    int little;
    if (!PyArg_ParseTuple(args, "y*npnw*w*w*", &buf, &start, &little, &max_block, &pos_b,
                          &type_b, &len_b))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = buf.len;
    if (start < 0 || start > n) {
        PyErr_SetString(PyExc_ValueError, "bad start");
        goto done;
    }
    const Py_ssize_t room = (n - start) / 12 + 1;
    if (check_out(&pos_b, 8, room, "pos") || check_out(&type_b, 8, room, "btype")
        || check_out(&len_b, 8, room, "btl"))
        goto done;
    const uint8_t *b = buf.buf;
    int64_t *pos_o = pos_b.buf, *type_o = type_b.buf, *len_o = len_b.buf;
    Py_ssize_t p = start, count = 0, fetched = start;
    int status = OK;
    Py_BEGIN_ALLOW_THREADS
    while (p < n) {
        /* a chain of dependent loads, as in pcap_decode: fetch the bytes ahead meanwhile */
        const Py_ssize_t ahead = p + PREFETCH_BYTES < n ? p + PREFETCH_BYTES : n;
        for (; fetched < ahead; fetched += 64)
            __builtin_prefetch(b + fetched);
        if (p + 8 > n) { status = INCOMPLETE; break; }
        const uint32_t btype = u32(b + p, little);
        const int64_t btl = u32(b + p + 4, little);
        if (btype == 0x0A0D0D0A) { status = STOP; break; }
        if (btl < 12 || btl % 4 != 0 || btl > max_block) { status = INVALID; break; }
        if (p + btl > n) { status = INCOMPLETE; break; }
        if (u32(b + p + btl - 4, little) != btl) { status = INVALID; break; }
        pos_o[count] = p;
        type_o[count] = btype;
        len_o[count] = btl;
        count++;
        p += btl;
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nni", count, p, status);
done:
    release(&buf, &pos_b, &type_b, &len_b);
    return result;
}

/* ------------------------------------------------------------------ field decode */

/* The output columns, declared once: (id, group, name, numpy dtype, C type). The order is
 * one the module exports as FIELDS (native.FIELDS). */
#define FIELD_LIST(X)                                                                          \
    X(IP_VERSION, ints, ip_version, "u1", uint8_t)                                             \
    X(IP_ID, ints, ip_id, "u4", uint32_t)                                                      \
    X(TTL, ints, ttl, "u1", uint8_t)                                                           \
    X(PROTO, ints, proto, "u1", uint8_t)                                                       \
    X(SRC_PORT, ints, src_port, "u2", uint16_t)                                                \
    X(DST_PORT, ints, dst_port, "u2", uint16_t)                                                \
    X(SEQ, ints, seq, "u4", uint32_t)                                                          \
    X(ACK, ints, ack, "u4", uint32_t)                                                          \
    X(TCP_FLAGS, ints, tcp_flags, "u2", uint16_t)                                              \
    X(PAYLOAD_LEN, ints, payload_len, "i4", int32_t)                                           \
    X(ICMP_TYPE, ints, icmp_type, "u1", uint8_t)                                               \
    X(ICMP_CODE, ints, icmp_code, "u1", uint8_t)                                               \
    X(ND_FLAGS, ints, nd_flags, "u1", uint8_t)                                                 \
    X(ARP_OP, ints, arp_op, "u2", uint16_t)                                                    \
    X(VLAN, ints, vlan, "u2", uint16_t)                                                        \
    X(ETHERTYPE, ints, ethertype, "u2", uint16_t)                                              \
    X(SRC_MAC, macs, src_mac, "u8", uint64_t)                                                  \
    X(DST_MAC, macs, dst_mac, "u8", uint64_t)                                                  \
    X(ND_LLADDR, macs, nd_lladdr, "u8", uint64_t)                                              \
    X(ARP_SENDER_MAC, macs, arp_sender_mac, "u8", uint64_t)                                    \
    X(ARP_TARGET_MAC, macs, arp_target_mac, "u8", uint64_t)                                    \
    X(SRC_IP, ip4, src_ip, "u4", uint32_t)                                                     \
    X(DST_IP, ip4, dst_ip, "u4", uint32_t)                                                     \
    X(ARP_SENDER_IP, ip4, arp_sender_ip, "u4", uint32_t)                                       \
    X(ARP_TARGET_IP, ip4, arp_target_ip, "u4", uint32_t)                                       \
    X(IP_DF, ints, ip_df, "b1", uint8_t)                                                       \
    X(TCP_MSS, ints, tcp_mss, "u2", uint16_t)                                                  \
    X(ICMP_MTU, ints, icmp_mtu, "u4", uint32_t)                                                \
    X(INNER_SRC_IP, ip4, inner_src_ip, "u4", uint32_t)                                         \
    X(INNER_DST_IP, ip4, inner_dst_ip, "u4", uint32_t)                                         \
    X(INNER_PROTO, ints, inner_proto, "u1", uint8_t)                                           \
    X(INNER_SRC_PORT, ints, inner_src_port, "u2", uint16_t)                                    \
    X(INNER_DST_PORT, ints, inner_dst_port, "u2", uint16_t)                                    \
    X(INNER_SEQ, ints, inner_seq, "u4", uint32_t)                                              \
    X(PAYLOAD_HASH, ints, payload_hash, "u8", uint64_t)                                         \
    X(PAYLOAD_WHOLE, ints, payload_whole, "b1", uint8_t)

#define AS_ENUM(id, group, name, dtype, T) F_##id,
enum { FIELD_LIST(AS_ENUM) N_FIELDS };
#define AS_SPEC(id, group, name, dtype, T) {#group, #name, dtype},
static const char *const FIELD_SPEC[N_FIELDS][3] = { FIELD_LIST(AS_SPEC) };
#define AS_SIZE(id, group, name, dtype, T) (int)sizeof(T),
static const int FIELD_SIZE[N_FIELDS] = { FIELD_LIST(AS_SIZE) };

#define ETH 1
#define IPV6_EXT(nh) ((nh) == 0 || (nh) == 43 || (nh) == 44 || (nh) == 60 || (nh) == 51)
#define IS_TPID(et) ((et) == 0x8100 || (et) == 0x88A8 || (et) == 0x9100)
#define MAX_VLAN_TAGS 4

typedef struct {
    void *v[N_FIELDS];
    uint8_t *ok[N_FIELDS];
} Columns;

/* One frame's fields, decoded into registers and the stack first and stored column by column
 * after: the column stores are then straight-line code. */
typedef struct {
    uint64_t v[N_FIELDS];
    uint8_t ok[64];                   /* N_FIELDS flags, rounded up: cleared in a few stores */
    uint8_t ip6[32];
    int has_ip6;
} Row;

/* ------------------------------------------------------------------ payload digest */

/* decode/digest.py defines it: two lanes, H = sum(b[j] * B**(L-1-j)) mod P, P = 2**29 - 3,
 * packed lane 1 << 32 | lane 2. A table gives both lanes' terms of a byte at each position of
 * an 8-byte step in one uint64 (each lane's sum of eight stays below 2**32), so a step costs
 * eight loads and adds; four steps make a 32-byte block whose lane values are combined off the
 * dependency chain, which then carries one multiply and fold per 32 bytes. Values between
 * steps are kept below 2**30 (folded, not fully reduced: x = hi * 2**29 + lo = hi * 3 + lo). */
#define DIGEST_P 536870909ULL
#define DIGEST_MASK ((1ULL << 29) - 1)
static const uint64_t DIGEST_BASE[2] = {278270624ULL, 500476775ULL};
static uint64_t digest_table[8][256];  /* both lanes' b * B**(7-k) mod P, byte k of a step */
static uint64_t digest_pow[2][4];      /* B**8, B**16, B**24, B**32 */

static inline uint64_t fold(uint64_t x) {      /* x < 2**63 -> below 2**30, same value mod P */
    x = (x & DIGEST_MASK) + (x >> 29) * 3;
    return (x & DIGEST_MASK) + (x >> 29) * 3;
}

static uint64_t mul_mod(uint64_t a, uint64_t b) { return (a * b) % DIGEST_P; }

static void digest_init(void) {
    for (int lane = 0; lane < 2; lane++) {
        uint64_t w = 1;
        for (int k = 7; k >= 0; k--) {
            for (uint64_t b = 0; b < 256; b++)
                digest_table[k][b] |= mul_mod(b, w) << (lane ? 0 : 32);
            w = mul_mod(w, DIGEST_BASE[lane]);
        }
        digest_pow[lane][0] = w;
        for (int j = 1; j < 4; j++)
            digest_pow[lane][j] = mul_mod(digest_pow[lane][j - 1], w);
    }
}

static inline uint64_t digest_step(const uint8_t *p) {
    uint64_t s = 0;
    for (int k = 0; k < 8; k++)
        s += digest_table[k][p[k]];
    return s;
}

static inline uint64_t digest(const uint8_t *p, int64_t n) {
    uint64_t h1 = 0, h2 = 0;
    const uint64_t lo = 0xFFFFFFFFULL;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const uint64_t a = digest_step(p + i), b = digest_step(p + i + 8),
                       c = digest_step(p + i + 16), d = digest_step(p + i + 24);
        const uint64_t v1 = fold((a >> 32) * digest_pow[0][2] + (b >> 32) * digest_pow[0][1])
                            + fold((c >> 32) * digest_pow[0][0] + (d >> 32));
        const uint64_t v2 = fold((a & lo) * digest_pow[1][2] + (b & lo) * digest_pow[1][1])
                            + fold((c & lo) * digest_pow[1][0] + (d & lo));
        h1 = fold(h1 * digest_pow[0][3] + v1);
        h2 = fold(h2 * digest_pow[1][3] + v2);
    }
    for (; i + 8 <= n; i += 8) {
        const uint64_t a = digest_step(p + i);
        h1 = fold(h1 * digest_pow[0][0] + (a >> 32));
        h2 = fold(h2 * digest_pow[1][0] + (a & lo));
    }
    for (; i < n; i++) {
        h1 = fold(h1 * DIGEST_BASE[0] + p[i]);
        h2 = fold(h2 * DIGEST_BASE[1] + p[i]);
    }
    return (h1 % DIGEST_P) << 32 | (h2 % DIGEST_P);
}

static inline void put(Row *r, int f, uint64_t value) {
    r->v[f] = value;
    r->ok[f] = 1;
}

static inline void store_row(const Columns *c, Py_ssize_t i, const Row *r) {
    /* (a value is stored as its low bytes: payload_len's negative values wrap, as in numpy) */
#define AS_STORE(id, group, name, dtype, T)                                                    \
    ((T *)c->v[F_##id])[i] = r->ok[F_##id] ? (T)r->v[F_##id] : 0;                             \
    c->ok[F_##id][i] = r->ok[F_##id];
    FIELD_LIST(AS_STORE)
#undef AS_STORE
}

/* The first MSS option among the TCP options of t up to end (deeper.py's tcp_mss walks
 * them the same way). */
static inline void tcp_mss(const uint8_t *t, int64_t end, Row *r) {
    int64_t p = 20;
    while (p < end) {
        const uint8_t kind = t[p];
        if (kind == 0)
            return;
        if (kind == 1) {
            p++;
            continue;
        }
        const int64_t size = p + 1 < end ? t[p + 1] : 0;
        if (kind == 2 && size == 4 && p + 4 <= end) {
            put(r, F_TCP_MSS, be16(t + p + 2));
            return;
        }
        if (size < 2)
            return;
        p += size;
    }
}

/* The IPv4 header (and the first 8 bytes after it) an ICMP error quotes, cap bytes of it
 * captured (deeper.py's icmp_errors decodes the same fields the same way). */
static inline void quoted_ip4(const uint8_t *u, int64_t cap, Row *r) {
    if (cap < 20 || (u[0] >> 4) != 4 || (u[0] & 0x0F) < 5)
        return;
    const int64_t ihl = (int64_t)(u[0] & 0x0F) * 4;
    const uint32_t proto = u[9];
    put(r, F_INNER_SRC_IP, be32(u + 12));
    put(r, F_INNER_DST_IP, be32(u + 16));
    put(r, F_INNER_PROTO, proto);
    if ((be16(u + 6) & 0x1FFF) != 0)
        return;                      /* a later fragment: no transport header quoted */
    if ((proto == 6 || proto == 17) && cap >= ihl + 4) {
        put(r, F_INNER_SRC_PORT, be16(u + ihl));
        put(r, F_INNER_DST_PORT, be16(u + ihl + 2));
    }
    if (proto == 6 && cap >= ihl + 8)
        put(r, F_INNER_SEQ, be32(u + ihl + 4));
}

/* Decode one frame into r (cleared before: value 0, not valid); returns 0 when done, 1 when the
 * frame is for layers.py (then what was decoded of it is overwritten by the caller). Every byte
 * read is inside the captured length (checked before it is read). */
static inline int decode_one(const uint8_t *p, int64_t cap, int64_t wire, int32_t linktype,
                             Row *r) {
    if (linktype != ETH || cap < 14)
        return 1;
    put(r, F_DST_MAC, be48(p));
    put(r, F_SRC_MAC, be48(p + 6));
    uint32_t et = be16(p + 12);
    int64_t l3 = 14;
    int tagged = 0;
    for (int t = 0; t < MAX_VLAN_TAGS && IS_TPID(et); t++) {
        if (cap < l3 + 4)
            return 1;
        if (!tagged) {
            put(r, F_VLAN, be16(p + l3) & 0x0FFF);
            tagged = 1;
        }
        et = be16(p + l3 + 2);
        l3 += 4;
    }
    if (et < 0x0600)
        return 0;                 /* an 802.3 length: no ethertype, nothing more decoded */
    put(r, F_ETHERTYPE, et);
    const int64_t cap3 = cap - l3;
    const uint8_t *q = p + l3;
    const int64_t on_wire = wire - l3;
    int64_t l4off, ip_payload;
    uint32_t proto;
    int v4;
    if (et == 0x0800) {
        if (cap3 < 20 || (q[0] >> 4) != 4)
            return 1;
        const int64_t ihl = (int64_t)(q[0] & 0x0F) * 4;
        if (ihl < 20 || cap3 < ihl)
            return 1;
        int64_t tot = be16(q + 2);
        if (tot == 0 || tot > on_wire)
            tot = on_wire;     /* TSO/GSO frames carry 0; a bogus one is bounded (layers.py) */
        proto = q[9];
        put(r, F_IP_VERSION, 4);
        put(r, F_IP_ID, be16(q + 4));
        put(r, F_IP_DF, (q[6] >> 6) & 1);
        put(r, F_TTL, q[8]);
        put(r, F_PROTO, proto);
        put(r, F_SRC_IP, be32(q + 12));
        put(r, F_DST_IP, be32(q + 16));
        if ((be16(q + 6) & 0x1FFF) != 0)
            return 0;          /* not the first fragment: no L4 header here */
        l4off = ihl;
        ip_payload = tot - ihl;
        v4 = 1;
    } else if (et == 0x86DD) {
        if (cap3 < 40 || (q[0] >> 4) != 6)
            return 1;
        proto = q[6];
        if (IPV6_EXT(proto))
            return 1;
        put(r, F_IP_VERSION, 6);
        put(r, F_TTL, q[7]);
        put(r, F_PROTO, proto);
        memcpy(r->ip6, q + 8, 32);
        r->has_ip6 = 1;
        int64_t plen = be16(q + 4);
        ip_payload = plen < on_wire - 40 ? plen : on_wire - 40;
        l4off = 40;
        v4 = 0;
    } else if (et == 0x0806) {
        if (cap3 < 8)
            return 1;
        put(r, F_ARP_OP, be16(q + 6));
        if (q[4] == 6 && q[5] == 4) {
            if (cap3 < 28)
                return 1;
            put(r, F_ARP_SENDER_MAC, be48(q + 8));
            put(r, F_ARP_SENDER_IP, be32(q + 14));
            put(r, F_ARP_TARGET_MAC, be48(q + 18));
            put(r, F_ARP_TARGET_IP, be32(q + 24));
        }
        return 0;
    } else {
        return 0;
    }
    const int64_t cap4 = cap3 - l4off;
    const uint8_t *t = q + l4off;    /* the transport header */
    if (proto == 6) {
        if (cap4 < 20)
            return 1;
        const int64_t doff = (int64_t)(t[12] >> 4) * 4;
        if (doff < 20)
            return 1;
        put(r, F_SRC_PORT, be16(t));
        put(r, F_DST_PORT, be16(t + 2));
        put(r, F_SEQ, be32(t + 4));
        put(r, F_ACK, be32(t + 8));
        put(r, F_TCP_FLAGS, ((uint32_t)(t[12] & 0x0F) << 8) | t[13]);
        const int64_t payload = ip_payload - doff, captured = cap4 - doff;
        put(r, F_PAYLOAD_LEN, (uint32_t)(int32_t)payload);
        /* the captured payload bytes (Ethernet padding past the IP packet is none of them) */
        const int64_t hashed = payload < captured ? payload : captured;
        put(r, F_PAYLOAD_HASH, digest(t + doff, hashed > 0 ? hashed : 0));
        put(r, F_PAYLOAD_WHOLE, captured >= payload);
        tcp_mss(t, doff < cap4 ? doff : cap4, r);
    } else if (proto == 17) {
        if (cap4 < 8)
            return 1;
        put(r, F_SRC_PORT, be16(t));
        put(r, F_DST_PORT, be16(t + 2));
        put(r, F_PAYLOAD_LEN, (uint32_t)(int32_t)(ip_payload - 8));
    } else if (proto == 1 && v4) {
        if (cap4 < 4)
            return 1;
        put(r, F_ICMP_TYPE, t[0]);
        put(r, F_ICMP_CODE, t[1]);
        put(r, F_PAYLOAD_LEN, (uint32_t)(int32_t)(ip_payload - 8));
        const uint8_t type = t[0];
        if (type == 3 && t[1] == 4 && cap4 >= 8)
            put(r, F_ICMP_MTU, be16(t + 6));          /* fragmentation needed: next-hop MTU */
        if (type == 3 || type == 4 || type == 5 || type == 11 || type == 12)
            quoted_ip4(t + 8, cap4 - 8, r);
    } else if (proto == 58 && !v4) {
        return 1;              /* ICMPv6: neighbour discovery options are layers.py's */
    }
    return 0;
}

/* Frame i decoded into the columns, its IPv6 addresses appended to v6. Returns 1 when the
 * frame is for layers.py. */
static inline int decode_row(const uint8_t *p, int64_t cap, int64_t wire, int32_t linktype,
                             const Columns *c, Py_ssize_t i, uint8_t *v6, Py_ssize_t *n6) {
    Row r;
    memset(r.ok, 0, sizeof r.ok);    /* only the flags: store_row writes 0 for unset values */
    r.has_ip6 = 0;
    const int slow = decode_one(p, cap, wire, linktype, &r);
    store_row(c, i, &r);
    if (r.has_ip6 && !slow) {
        memcpy(v6 + 32 * (*n6), r.ip6, 32);
        (*n6)++;
    }
    return slow;
}

/* The column buffers of `values` and `valid` (one array per field), each holding `rows` rows.
 * Returns how many fields' buffers were taken: N_FIELDS, or fewer with an exception set. */
static int get_columns(PyObject *values, PyObject *valid, Py_ssize_t rows, Columns *cols,
                       Py_buffer *vb, Py_buffer *okb) {
    if (!PySequence_Check(values) || !PySequence_Check(valid)
        || PySequence_Size(values) != N_FIELDS || PySequence_Size(valid) != N_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "values and valid need one array per field");
        return 0;
    }
    int got = 0;
    for (; got < N_FIELDS; got++) {
        PyObject *a = PySequence_GetItem(values, got);
        PyObject *o = a ? PySequence_GetItem(valid, got) : NULL;
        int bad = !a || !o || PyObject_GetBuffer(a, &vb[got], PyBUF_WRITABLE) < 0;
        if (!bad && PyObject_GetBuffer(o, &okb[got], PyBUF_WRITABLE) < 0) {
            PyBuffer_Release(&vb[got]);
            bad = 1;
        }
        Py_XDECREF(a);
        Py_XDECREF(o);
        if (bad)
            break;
        if (vb[got].len < rows * FIELD_SIZE[got] || okb[got].len < rows) {
            PyBuffer_Release(&vb[got]);
            PyBuffer_Release(&okb[got]);
            PyErr_Format(PyExc_ValueError, "column %s is too short", FIELD_SPEC[got][1]);
            break;
        }
        cols->v[got] = vb[got].buf;
        cols->ok[got] = okb[got].buf;
    }
    return got;
}

static void release_columns(int got, Py_buffer *vb, Py_buffer *okb) {
    for (int f = 0; f < got; f++) {
        PyBuffer_Release(&vb[f]);
        PyBuffer_Release(&okb[f]);
    }
}

PyDoc_STRVAR(decode_frames_doc,
"decode_frames(buf, data_pos, caplen, wirelen, linktype, values, valid, slow, ip6) -> n6\n"
"Decode every frame i (int64 data_pos/caplen/wirelen, int32 linktype). values and valid are\n"
"sequences of len(FIELDS) arrays of n entries (dtype as in FIELDS; valid: bool). slow: bool\n"
"per frame, set where the frame was not decoded here (the caller decodes it and overwrites its\n"
"columns). ip6: n*32 bytes, filled with the source and destination addresses of the IPv6\n"
"frames decoded here, in frame order. Returns the number of those IPv6 frames.");

static PyObject *decode_frames(PyObject *self, PyObject *args) {
    Py_buffer buf, pos_b, cap_b, wire_b, lt_b, slow_b, v6_b;
    PyObject *values, *valid;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*OOw*w*", &buf, &pos_b, &cap_b, &wire_b, &lt_b,
                          &values, &valid, &slow_b, &v6_b))
        return NULL;
    Py_buffer vb[N_FIELDS], okb[N_FIELDS];
    Columns cols;
    int got = 0;
    PyObject *result = NULL;
    const Py_ssize_t n = pos_b.len / 8;
    if (cap_b.len < n * 8 || wire_b.len < n * 8 || lt_b.len < n * 4 || slow_b.len < n
        || v6_b.len < n * 32) {
        PyErr_SetString(PyExc_ValueError, "per-frame arrays of different lengths");
        goto done;
    }
    got = get_columns(values, valid, n, &cols, vb, okb);
    if (got < N_FIELDS)
        goto done;
    const uint8_t *b = buf.buf;
    const int64_t *pos = pos_b.buf, *cap = cap_b.buf, *wire = wire_b.buf;
    const int32_t *lt = lt_b.buf;
    uint8_t *slow = slow_b.buf, *v6 = v6_b.buf;
    Py_ssize_t n6 = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        /* frames a few ahead are fetched meanwhile (each one's first bytes are a cache miss) */
        if (i + 8 < n && pos[i + 8] >= 0 && pos[i + 8] < buf.len)
            __builtin_prefetch(b + pos[i + 8]);
        if (pos[i] < 0 || cap[i] < 0 || pos[i] + cap[i] > buf.len)
            /* not all in the buffer: left to layers.py, which reads what there is (link type
             * -1 makes decode_row give up before reading anything) */
            slow[i] = decode_row(b, 0, 0, -1, &cols, i, v6, &n6);
        else
            slow[i] = decode_row(b + pos[i], cap[i], wire[i], lt[i], &cols, i, v6, &n6);
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(n6);
done:
    release_columns(got, vb, okb);
    release(&buf, &pos_b, &cap_b, &wire_b, &lt_b, &slow_b, &v6_b);
    return result;
}

PyDoc_STRVAR(pcap_decode_doc,
"pcap_decode(buf, start, limit, hdrlen, little, max_caplen, frac_ns, linktype, offset, n6_offset,\n"
"            pos, caplen, wirelen, ts_ns, values, valid, slow, ip6) -> (count, end, status, n6)\n"
"pcap_walk and decode_frames in one pass: walk the records of buf from start while the record\n"
"start is below limit (a record may end past limit, not past the end of buf), and decode each\n"
"frame while its bytes are in cache. Entries are written from row `offset` (ip6 rows from\n"
"n6_offset); every output needs room for (limit - start) // hdrlen + 1 more rows.");

static PyObject *pcap_decode(PyObject *self, PyObject *args) {
    Py_buffer buf, pos_b, cap_b, wire_b, ts_b, slow_b, v6_b;
    Py_ssize_t start, limit, hdrlen, max_caplen, offset, n6_offset;
    long long frac_ns;
    int little, linktype;
    PyObject *values, *valid;
    if (!PyArg_ParseTuple(args, "y*nnnpnLinnw*w*w*w*OOw*w*", &buf, &start, &limit, &hdrlen,
                          &little, &max_caplen, &frac_ns, &linktype, &offset, &n6_offset, &pos_b,
                          &cap_b, &wire_b, &ts_b, &values, &valid, &slow_b, &v6_b))
        return NULL;
    Py_buffer vb[N_FIELDS], okb[N_FIELDS];
    Columns cols;
    int got = 0;
    PyObject *result = NULL;
    const Py_ssize_t n = buf.len;
    if (hdrlen < 16 || start < 0 || start > n || limit > n || offset < 0 || n6_offset < 0) {
        PyErr_SetString(PyExc_ValueError, "bad start, limit, offset or header length");
        goto done;
    }
    const Py_ssize_t rows = offset + (limit > start ? (limit - start) / hdrlen : 0) + 1;
    if (check_out(&pos_b, 8, rows, "pos") || check_out(&cap_b, 8, rows, "caplen")
        || check_out(&wire_b, 8, rows, "wirelen") || check_out(&ts_b, 8, rows, "ts_ns")
        || check_out(&slow_b, 1, rows, "slow")
        || check_out(&v6_b, 32, n6_offset + rows - offset, "ip6"))
        goto done;
    got = get_columns(values, valid, rows, &cols, vb, okb);
    if (got < N_FIELDS)
        goto done;
    const uint8_t *b = buf.buf;
    int64_t *pos_o = pos_b.buf, *cap_o = cap_b.buf, *wire_o = wire_b.buf, *ts_o = ts_b.buf;
    uint8_t *slow = slow_b.buf, *v6 = (uint8_t *)v6_b.buf + 32 * n6_offset;
    Py_ssize_t p = start, i = offset, n6 = 0;
    Py_ssize_t fetched = start;     /* lines before this were prefetched */
    int status = OK;
    Py_BEGIN_ALLOW_THREADS
    while (p < limit) {
        if (p + hdrlen > n) { status = INCOMPLETE; break; }
        const uint8_t *h = b + p;
        /* The next record's position is known only once this one's header is read: a chain
         * of dependent loads. Fetching the bytes ahead keeps it out of memory latency. */
        const Py_ssize_t ahead = p + PREFETCH_BYTES < n ? p + PREFETCH_BYTES : n;
        for (; fetched < ahead; fetched += 64)
            __builtin_prefetch(b + fetched);
        const int64_t cap = u32(h + 8, little);
        if (cap > max_caplen) { status = INVALID; break; }
        if (p + hdrlen + cap > n) { status = INCOMPLETE; break; }
        const int64_t wire = u32(h + 12, little);
        pos_o[i] = p + hdrlen;
        cap_o[i] = cap;
        wire_o[i] = wire;
        ts_o[i] = (int64_t)u32(h, little) * 1000000000LL + (int64_t)u32(h + 4, little) * frac_ns;
        slow[i] = decode_row(h + hdrlen, cap, wire, linktype, &cols, i, v6, &n6);
        i++;
        p += hdrlen + cap;
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nnin", i - offset, p, status, n6);
done:
    release_columns(got, vb, okb);
    release(&buf, &pos_b, &cap_b, &wire_b, &ts_b, &slow_b, &v6_b);
    return result;
}

static PyMethodDef methods[] = {
    {"pcap_walk", pcap_walk, METH_VARARGS, pcap_walk_doc},
    {"pcapng_walk", pcapng_walk, METH_VARARGS, pcapng_walk_doc},
    {"decode_frames", decode_frames, METH_VARARGS, decode_frames_doc},
    {"pcap_decode", pcap_decode, METH_VARARGS, pcap_decode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "Compiled kernels of the decoder (see native.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    digest_init();
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    PyObject *fields = PyTuple_New(N_FIELDS);
    if (!fields) {
        Py_DECREF(m);
        return NULL;
    }
    for (int f = 0; f < N_FIELDS; f++) {
        PyObject *spec = Py_BuildValue("(sss)", FIELD_SPEC[f][0], FIELD_SPEC[f][1],
                                       FIELD_SPEC[f][2]);
        if (!spec) {
            Py_DECREF(fields);
            Py_DECREF(m);
            return NULL;
        }
        PyTuple_SET_ITEM(fields, f, spec);
    }
    if (PyModule_AddObject(m, "FIELDS", fields) < 0) {
        Py_DECREF(fields);
        Py_DECREF(m);
        return NULL;
    }
    /* the digest's definition, for the check that digest.py holds the same */
    PyObject *spec = Py_BuildValue("(KKK)", DIGEST_P, DIGEST_BASE[0], DIGEST_BASE[1]);
    if (!spec || PyModule_AddObject(m, "DIGEST", spec) < 0) {
        Py_XDECREF(spec);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
