/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The bsr replication wire protocol (docs/protocol.md describes it for
 * people and for the fuzzing client in tests/vm/repl_fuzz.py).
 *
 * A connection is two TCP streams: "data" (handshake, later replicated
 * writes and resync) and "meta" (pings, later acks).  Every packet is a
 * 16-byte header followed by @length payload bytes.  All integers are
 * big-endian and every struct has a fixed size; nothing on the wire is
 * trusted: bsr_receiver.c checks magic, command, stream, length and
 * sequence before it reads (or allocates) anything for the payload.
 */
#ifndef _BSR_PROTO_H
#define _BSR_PROTO_H

#include <linux/types.h>
#include <linux/build_bug.h>

#define BSR_PKT_MAGIC		0x42535231U	/* "BSR1" */
#define BSR_VOL_NONE		0xFFFFU		/* packet is not about a volume */
#define BSR_MAX_PAYLOAD		(64U << 10)	/* largest payload accepted */
#define BSR_NONCE_LEN		32
#define BSR_MAX_DIGEST		64
#define BSR_ALG_LEN		64

/* Feature bits of p_features.features; none defined by protocol 1. */
#define BSR_FF_KNOWN		0U

struct bsr_pkt_hdr {
	__be32 magic;
	__be16 command;		/* enum bsr_packet */
	__be16 volume;		/* BSR_VOL_NONE unless per volume */
	__be32 length;		/* payload bytes after the header */
	__be32 seq;		/* per stream, 1 for the first packet */
} __packed;

enum bsr_packet {
	P_HELLO = 1,		/* first packet of each stream */
	P_FEATURES = 2,		/* data: versions, node ids, auth alg */
	P_AUTH_CHALLENGE = 3,	/* data: nonce to sign */
	P_AUTH_RESPONSE = 4,	/* data: HMAC over the peer's nonce */
	P_SIZES = 5,		/* data, per volume */
	P_UUIDS = 6,		/* data, per volume */
	P_STATE = 7,		/* data: role */
	P_HS_DONE = 8,		/* data: end of the handshake */
	P_PING = 9,		/* meta */
	P_PING_ACK = 10,	/* meta */
	P_DISCONNECT = 11,	/* data: the peer is going away on purpose */
	P_VOL_JOIN = 12,	/* data, per volume, Connected: p_vol_join */
	P_VOL_LEAVE = 13,	/* data, per volume, Connected: p_vol_leave */
	P_CORE_LAST = P_VOL_LEAVE,

	/* write replication (bsr_repl.c, bsr_peer_req.c): 32..47 */
	P_DATA = 32,		/* data, per volume: p_data + the data */
	P_BARRIER = 33,		/* data: closes an epoch */
	P_RECV_ACK = 34,	/* meta, per volume: protocol B */
	P_WRITE_ACK = 35,	/* meta, per volume: written on the peer */
	P_NEG_ACK = 36,		/* meta, per volume: the peer failed it */
	P_BARRIER_ACK = 37,	/* meta: every write of the epoch is done */
	P_OUT_OF_SYNC = 38,	/* data, per volume: mark a range */
	P_REPL_LAST = 47,

	/* bitmap exchange, resync, online verify (bsr_resync.c): 48..63 */
	P_RS_FIRST = 48,
	P_RS_LAST = 63,
	P_MAX_KNOWN = P_RS_LAST,
};

enum bsr_stream_kind {
	BSR_STREAM_DATA = 0,
	BSR_STREAM_META = 1,
};

struct p_hello {
	__u8 stream;		/* enum bsr_stream_kind */
	__u8 pad[3];
	__be32 sender_node_id;
	__be32 receiver_node_id;
	__be32 reserved;
	__be64 cookie;		/* pairs the two streams of one attempt */
} __packed;

struct p_features {
	__be32 proto_min;
	__be32 proto_max;
	__be32 features;	/* BSR_FF_* */
	__be32 sender_node_id;
	__be32 receiver_node_id;
	__be32 volumes;		/* volumes the sender will describe */
	__u8 auth_alg[BSR_ALG_LEN];	/* cram-hmac-alg, NUL padded, "" none */
	__u8 res_name[64];	/* informational */
} __packed;

struct p_auth_challenge {
	__u8 nonce[BSR_NONCE_LEN];
} __packed;

/* p_auth_response is the digest itself: length == digest size of alg. */

struct p_sizes {
	__be64 max_sectors;	/* what the backing disk can hold; 0 diskless */
	__be64 cur_sectors;	/* size of the device right now */
	__be64 user_sectors;	/* configured size, 0 = whole disk */
} __packed;

struct p_uuids {
	__be64 current_uuid;
	__be64 bitmap_uuid;	/* of the sender's bitmap towards the receiver */
	__be64 history[4];
	__be64 oos_sectors;	/* sender's out-of-sync count towards receiver */
	__be32 md_flags;
	__be32 disk_state;	/* enum bsr_disk_state */
} __packed;

#define BSR_STF_DISCARD_MY_DATA	(1U << 0)

struct p_state {
	__be32 role;		/* enum bsr_role */
	__be32 flags;		/* BSR_STF_* */
} __packed;

struct p_hs_done {
	__be32 volumes;		/* P_SIZES/P_UUIDS pairs that were sent */
} __packed;

struct p_disconnect {
	__be32 reason;		/* 0 admin request, 1 module unload */
} __packed;

/*
 * A volume attached (P_VOL_JOIN) or detached (P_VOL_LEAVE) on a connection
 * that is already Connected.  Each side sends its P_VOL_JOIN once its own
 * disk is there (or in answer to the peer's); with both in hand, each
 * decides like the handshake does for that volume alone.  The other
 * volumes and the connection are not touched.
 */
struct p_vol_join {
	struct p_sizes sizes;
	struct p_uuids uuids;
} __packed;

struct p_vol_leave {
	__be32 reason;		/* 0 detach, 1 I/O error */
	__be32 pad;
} __packed;

static_assert(sizeof(struct bsr_pkt_hdr) == 16);
static_assert(sizeof(struct p_hello) == 24);
static_assert(sizeof(struct p_features) == 24 + BSR_ALG_LEN + 64);
static_assert(sizeof(struct p_uuids) == 64);
static_assert(sizeof(struct p_vol_join) == 88);

/* ------------------------------------------------ write replication */

/* The largest write carried by one P_DATA / P_RS_DATA packet. */
#define BSR_MAX_BIO_SIZE	(1U << 20)
/* The largest discard / write-zeroes range of one P_DATA (no data). */
#define BSR_MAX_DISCARD		(1U << 30)

/* p_data.dp_flags */
#define BSR_DP_FUA		(1U << 0)
#define BSR_DP_PREFLUSH		(1U << 1)
#define BSR_DP_DISCARD		(1U << 2)	/* no data follows */
#define BSR_DP_ZEROES		(1U << 3)	/* no data follows */
#define BSR_DP_SEND_RECV_ACK	(1U << 4)	/* protocol B */
#define BSR_DP_SEND_WRITE_ACK	(1U << 5)	/* protocols A/B/C */

/*
 * P_DATA, P_RS_DATA: followed by @size bytes of data (none for discard
 * and write-zeroes).  The packet length is sizeof(struct p_data) + data.
 */
struct p_data {
	__be64 sector;
	__be64 block_id;	/* opaque to the receiver, echoed in acks */
	__be32 epoch;		/* P_DATA: the epoch the write belongs to */
	__be32 dp_flags;	/* BSR_DP_* */
	__be32 size;		/* bytes of the write */
	__be32 pad;
} __packed;

/* P_RECV_ACK, P_WRITE_ACK, P_NEG_ACK and the resync acks. */
struct p_block_ack {
	__be64 sector;
	__be64 block_id;
	__be32 size;
	__be32 pad;
} __packed;

struct p_barrier {
	__be32 epoch;		/* the epoch this barrier closes */
	__be32 pad;
} __packed;

struct p_barrier_ack {
	__be32 epoch;
	__be32 set_size;	/* writes that were in the epoch */
} __packed;

/* P_OUT_OF_SYNC */
struct p_block_desc {
	__be64 sector;
	__be32 size;
	__be32 pad;
} __packed;

static_assert(sizeof(struct p_data) == 32);
static_assert(sizeof(struct p_block_ack) == 24);

/* ------------------------------------------- resync, bitmap, verify */

/*
 * Resync is driven by the SyncSource.  It sends P_RS_SYNC_UUID (the
 * target adopts the UUID, so that an interrupted resync continues as a
 * bitmap-based one), then both sides send their bitmap slot for the other
 * as P_RS_BITMAP packets and OR the peer's bits into their own slot.  The
 * source then walks the union: P_RS_DATA (a p_data + data) for each run
 * of set bits; the target writes it and answers P_RS_WRITE_ACK (or
 * P_RS_NEG_ACK) on the meta stream.  Both sides clear a bit when its block
 * landed.  P_RS_DONE ends it: the target takes the source's UUIDs.
 */
enum bsr_rs_packet {
	P_RS_SYNC_UUID = 48,	/* data, per volume: p_rs_sync_uuid */
	P_RS_BITMAP = 49,	/* data, per volume: p_rs_bitmap + runs */
	P_RS_DATA = 50,		/* data, per volume: p_data + data */
	P_RS_WRITE_ACK = 51,	/* meta, per volume: p_block_ack */
	P_RS_NEG_ACK = 52,	/* meta, per volume: p_block_ack */
	P_RS_DONE = 53,		/* data, per volume: p_rs_uuids */
	P_RS_SUSP = 54,		/* data, per volume: p_rs_susp */
	P_RS_NEW_UUIDS = 55,	/* data, per volume: p_rs_uuids */
	P_RS_WANT_SYNC = 56,	/* data, per volume: p_rs_susp (reserved 0) */
	P_OV_START = 57,	/* data, per volume: p_ov_start */
	P_OV_DIGEST = 58,	/* data, per volume: p_ov_digest + digests */
	P_OV_RESULT = 59,	/* meta, per volume: p_ov_result */
	P_OV_DONE = 60,		/* data, per volume: p_ov_done */
};

/* p_rs_sync_uuid.flags */
#define BSR_RSF_FULL		(1U << 0)	/* every block is out of sync */

struct p_rs_sync_uuid {
	__be64 uuid;		/* the source's bitmap UUID towards the target */
	__be32 flags;		/* BSR_RSF_* */
	__be32 pad;
} __packed;

/*
 * A piece of a bitmap slot: bits [start_bit, end_bit) described by the
 * run lengths that follow, alternating clear/set and starting with a
 * clear run (which may be 0).  Each run length is an unsigned LEB128
 * varint (7 bits per byte, low first, high bit = more bytes follow).  The
 * runs must add up to end_bit - start_bit exactly.  Packets of one
 * exchange cover the bitmap in order, without gaps.
 */
#define BSR_RSB_LAST		(1U << 0)	/* the last piece */

struct p_rs_bitmap {
	__be64 start_bit;
	__be64 end_bit;
	__be32 flags;		/* BSR_RSB_* */
	__be32 pad;
} __packed;

/* P_RS_DONE: the source's UUIDs; P_RS_NEW_UUIDS: the sender's new ones. */
struct p_rs_uuids {
	__be64 current_uuid;
	__be64 history[4];
	__be32 flags;		/* P_RS_NEW_UUIDS: 1 = bitmap cleared */
	__be32 pad;
} __packed;

/* p_rs_uuids.flags of P_RS_DONE: stopped by an I/O error, blocks left. */
#define BSR_RSD_FAILED		(1U << 1)

/* P_RS_SUSP: resync-suspended flags of the sender (BSR_SUSP_USER). */
struct p_rs_susp {
	__be32 susp;
	__be32 pad;
} __packed;

/*
 * Online verify is driven by the VerifyS node.  P_OV_START names the
 * range and the digest (the VerifyS node's verify-alg).  VerifyS reads
 * up to 256 KiB at a time and sends one digest per 4 KiB block
 * (P_OV_DIGEST); VerifyT reads the same blocks, compares and answers
 * P_OV_RESULT on the meta stream with a bit per block that differs.
 * Both sides mark differing blocks out of sync.  When every answer is in,
 * VerifyS sends P_OV_DONE; VerifyT sends P_OV_DONE with BSR_OVD_STOP to
 * ask VerifyS to stop early (stop-verify on the VerifyT node).
 */
#define BSR_OV_BLOCK		4096
#define BSR_OV_MAX_BLOCKS	64		/* per P_OV_DIGEST */
#define BSR_OV_MAX_DIGEST	64		/* bytes, sha512 */

struct p_ov_start {
	__be64 start_sector;
	__be64 stop_sector;	/* exclusive */
	__u8 alg[BSR_ALG_LEN];	/* crypto_shash name, NUL padded */
} __packed;

struct p_ov_digest {
	__be64 sector;		/* 4 KiB aligned */
	__be32 size;		/* bytes */
	__be16 digest_size;	/* bytes per block digest */
	__be16 pad;
} __packed;			/* + DIV_ROUND_UP(size, 4096) digests */

struct p_ov_result {
	__be64 sector;
	__be32 size;
	__be32 pad;
	__be64 differ;		/* bit i: block i of the range differs */
} __packed;

#define BSR_OVD_STOPPED		(1U << 0)	/* stopped before the end */
#define BSR_OVD_STOP		(1U << 1)	/* VerifyT asks VerifyS to stop */

struct p_ov_done {
	__be64 mismatch;	/* sectors found different */
	__be32 flags;		/* BSR_OVD_* */
	__be32 pad;
} __packed;

static_assert(sizeof(struct p_rs_bitmap) == 24);
static_assert(sizeof(struct p_ov_start) == 16 + BSR_ALG_LEN);
static_assert(sizeof(struct p_ov_digest) == 16);
static_assert(sizeof(struct p_ov_result) == 24);
static_assert(sizeof(struct p_ov_done) == 16);
static_assert(sizeof(struct p_rs_uuids) == 48);

#endif /* _BSR_PROTO_H */
