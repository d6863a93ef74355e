/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Two primitives shared by write replication (bsr_repl.c) and resync
 * (bsr_resync.c):
 *
 *  - range locks on a device: every write that bsr submits to a backing
 *    disk while a peer is involved (application writes on the Primary,
 *    writes from the peer on the Secondary, resync reads on the
 *    SyncSource and resync writes on the SyncTarget) holds a lock on its
 *    sectors, so that overlapping I/O is done one after the other, in the
 *    order the locks were taken, on both nodes alike;
 *
 *  - peer requests: a range of a device backed by pages, read from the
 *    data stream (a write from the peer) or filled by a local read (resync
 *    source, verify), submitted to the backing disk with a completion
 *    callback.
 */
#ifndef _BSR_PEER_REQ_H
#define _BSR_PEER_REQ_H

#include <linux/list.h>
#include <linux/blk_types.h>
#include "bsr_transport.h"

struct bsr_range {
	struct list_head list;		/* on the device's lock list */
	sector_t sector;
	u32 nr_sectors;
	bool waiting;			/* someone waits for us to unlock */
};

/* Sleeps until no overlapping range is locked, then locks it. */
void bsr_range_lock(struct bsr_device *dev, struct bsr_range *r,
		    sector_t sector, u32 nr_sectors);
/* Never sleeps: true with the range locked, false when it overlaps. */
bool bsr_range_trylock(struct bsr_device *dev, struct bsr_range *r,
		       sector_t sector, u32 nr_sectors);
/* Any context (bio completion included). */
void bsr_range_unlock(struct bsr_device *dev, struct bsr_range *r);

struct bsr_peer_req {
	struct bsr_peer_device *pd;
	struct bsr_range range;
	sector_t sector;
	u32 size;			/* bytes */
	u64 block_id;			/* the peer's, echoed in the ack */
	u32 dp_flags;			/* BSR_DP_* */
	u32 epoch;
	blk_status_t status;		/* of the backing-disk I/O */
	struct page **pages;
	u32 nr_pages;
	struct list_head list;		/* free for the owner's use */
	/*
	 * Called once the backing-disk I/O is done, in bio completion
	 * context (must not sleep; queue work to send from there).
	 */
	void (*done)(struct bsr_peer_req *pr);
	void *private;			/* free for the owner's use */
	u8 held;			/* bsr_peer_req.c: range lock, ldev */
};

/*
 * A request for @size bytes at @sector of @pd's device, with pages for
 * the data when @with_data.  GFP_NOIO.  NULL when out of memory.
 */
struct bsr_peer_req *bsr_peer_req_alloc(struct bsr_peer_device *pd,
					sector_t sector, u32 size,
					bool with_data);
/* Unlocks the range and drops the disk reference if they are held. */
void bsr_peer_req_free(struct bsr_peer_req *pr);

/*
 * Read the data of a P_DATA / P_RS_DATA packet (bsr_pkt_tail(h) bytes,
 * which must equal pr->size) from the data stream into pr's pages.
 */
int bsr_peer_req_recv_data(struct bsr_net *n, struct bsr_peer_req *pr);

/*
 * Take the range lock (may sleep: overlapping I/O finishes first), hold a
 * reference on the backing disk, submit @op (REQ_OP_READ, REQ_OP_WRITE,
 * REQ_OP_DISCARD, REQ_OP_WRITE_ZEROES; BSR_DP_FUA/PREFLUSH in dp_flags
 * apply) and return.  pr->done runs when it completed, with the range
 * still locked and the disk reference still held: bsr_peer_req_free()
 * releases both, so a resync read keeps its range locked until its data
 * went out on the data stream.  -ENODEV without a usable disk (done is
 * not called then, nothing is held).
 */
int bsr_peer_req_submit(struct bsr_peer_req *pr, enum req_op op);

/* Send pr's pages after @head (of @head_len bytes) as one packet. */
int bsr_send_peer_req(struct bsr_stream *st, enum bsr_packet cmd,
		      const void *head, u32 head_len,
		      struct bsr_peer_req *pr);


#endif /* _BSR_PEER_REQ_H */
