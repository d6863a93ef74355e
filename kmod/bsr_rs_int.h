/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Private to the resync code (bsr_resync.c, bsr_rs_ctl.c): the state of
 * one connection's resync and of each of its volumes.
 */
#ifndef _BSR_RS_INT_H
#define _BSR_RS_INT_H

#include <linux/workqueue.h>
#include "bsr_transport.h"
#include "bsr_peer_req.h"

#define RS_TICK			(HZ / 10)	/* controller step: 100 ms */
#define RS_MAX_REQ_BITS		64		/* 256 KiB per P_RS_DATA */
#define RS_MAX_IN_FLIGHT	(16 << 11)	/* sectors: 16 MiB of pages */
#define RS_FIFO_MAX		300		/* c-plan-ahead max, in ticks */
#define RS_AVG_TICKS		10		/* the ack rate is averaged over 1 s */

/* Our peer requests, in bsr_peer_req.dp_flags above the BSR_DP_* bits. */
#define RS_PR_READ		(1U << 30)	/* a SyncSource read */
#define RS_PR_OV_S		(1U << 29)	/* a VerifyS read */
#define RS_PR_OV_T		(1U << 28)	/* a VerifyT read */

enum rs_role { RS_NONE, RS_SOURCE, RS_TARGET, RS_VERIFY_S, RS_VERIFY_T };

/* rs_vol.flags */
enum {
	RSV_START,		/* become SyncSource (worker) */
	RSV_FULL,		/* ... of every block */
	RSV_SEND_BM,		/* send our bitmap (worker) */
	RSV_PEER_BM,		/* the peer's bitmap is all in */
	RSV_SYNCING,		/* bitmaps exchanged, blocks moving */
	RSV_FAILED,		/* I/O error: stop issuing */
	RSV_WANT_SYNC,		/* ask the peer to sync to us (worker) */
	RSV_NEW_UUIDS,		/* send P_RS_NEW_UUIDS (worker) */
	RSV_OV_START,		/* become VerifyS (worker) */
	RSV_OV_STOP,		/* stop the verify early */
	RSV_OV_ASK_STOP,	/* VerifyT: ask VerifyS to stop (worker) */
};

struct crypto_shash;

struct bsr_rs_conn;

struct rs_vol {
	struct bsr_rs_conn *rc;
	struct bsr_peer_device *pd;
	struct bsr_device *dev;
	u16 volume;
	int slot;			/* bitmap slot of the peer, -1 none */
	enum rs_role role;
	unsigned long flags;		/* RSV_* */
	u64 bm_recv_next;		/* next bit of the peer's bitmap */
	u32 bm_pkts;			/* bitmap packets sent */
	u32 sent_susp;			/* BSR_SUSP_USER as the peer knows it */
	unsigned long paused_since;	/* jiffies, 0 while not paused */
	unsigned long started;
	/* the source's walk and its rate controller */
	u64 cursor;			/* next bit to look at */
	u64 budget;			/* sectors still to issue this tick */
	unsigned long next_tick;
	atomic_t in_flight;		/* sectors read or sent, not acked */
	atomic64_t acked;		/* sectors acked, ever */
	u64 last_acked;
	u64 last_app_sectors;		/* device writes at the last tick */
	unsigned long app_seen;		/* jiffies of the last tick with app writes */
	u32 fifo[RS_FIFO_MAX];		/* plan: corrections per future tick */
	u32 fifo_head;
	s64 fifo_total;
	u32 fifo_steps;
	u32 in_hist[RS_AVG_TICKS];	/* sectors acked per tick, last second */
	u32 in_pos, in_n;
	u64 in_sum;
	/* online verify */
	struct crypto_shash *ov_tfm;	/* verify-alg while verifying */
	u64 ov_pos, ov_stop;		/* sectors: next to issue, end */
};

/* VerifyT: a read and the digests it is compared with (pr->private). */
struct ov_treq {
	struct rs_vol *v;
	u32 digest_size;
	u8 digests[];
};

struct bsr_rs_conn {
	struct bsr_net *n;
	struct task_struct *worker;
	wait_queue_head_t waitq;
	unsigned long flags;		/* RSC_* */
	unsigned long next_progress, next_bm_write;
	void *bmbuf;			/* one bitmap packet */
	struct workqueue_struct *wq;	/* finishes peer requests */
	struct work_struct done_work;
	spinlock_t lock;		/* done_list */
	struct list_head done_list;
	atomic_t pending_io;		/* our peer requests alive */
	u32 nr;				/* vols[] in use: rs_nr() */
	u32 cap;			/* vols[] allocated */
	struct rs_vol vols[];
};

#define RSC_KICK	0	/* something for the worker */

/* bsr_resync.c */
bool rs_lock(struct bsr_net *n);
void rs_kick(struct bsr_rs_conn *rc);

bool rs_state(struct rs_vol *v, enum bsr_repl_state rs,
	      enum bsr_disk_state pds);
int rs_submit(struct rs_vol *v, struct bsr_peer_req *pr, enum req_op op);

/* bsr_verify.c: online verify on the resync worker and streams. */
int ov_begin(struct rs_vol *v);
void ov_walk(struct rs_vol *v);
void ov_read_done(struct bsr_peer_req *pr);
int ov_recv(struct bsr_net *n, struct rs_vol *v, struct bsr_pkt_hdr *h);
int ov_got_result(struct bsr_net *n, struct rs_vol *v, struct bsr_pkt_hdr *h);
void ov_send_stop(struct rs_vol *v);
void ov_end(struct rs_vol *v);

/* bsr_rs_ctl.c: sectors the source may issue in the next tick. */
u64 rs_controller(struct rs_vol *v);
/* ... and a fresh start for it (a resync or verify begins). */
void rs_controller_reset(struct rs_vol *v);

#endif /* _BSR_RS_INT_H */
