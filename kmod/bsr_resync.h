/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Resync and online verify as the rest of the module sees them: the
 * statistics kept per peer device (they outlive a connection, like
 * DRBD's), and what the netlink handlers and role changes ask for.  The
 * machinery is private to bsr_resync.c.
 */
#ifndef _BSR_RESYNC_H
#define _BSR_RESYNC_H

#include <linux/atomic.h>
#include <linux/types.h>

struct bsr_peer_device;
struct bsr_peer_device_stats;
struct bsr_rs_conn;

/* Of the last (or current) resync or verify; sectors unless said. */
struct bsr_rs_stats {
	atomic64_t total;
	atomic64_t done;
	atomic64_t sent;		/* resync data sent */
	atomic64_t paused_ms;
	atomic64_t ov_mismatch;
};

void bsr_rs_fill_stats(struct bsr_peer_device *pd,
		       struct bsr_peer_device_stats *ps);
/*
 * With bsr_cfg_mutex held.  -ENOTCONN unless the peer device is connected
 * and idle (Established).
 *  request_sync: this node becomes SyncSource (full: every block).
 *  request_target: ask the peer to sync every block to this node.
 *  send_new_uuids: tell the peer our new UUIDs (bitmap cleared: adopt).
 *  verify_start: become VerifyS of sectors [@start, @stop) with @tfm.
 *  verify_stop: stop the verify (either side; -ENOENT when none runs).
 */
int bsr_rs_request_sync(struct bsr_peer_device *pd, bool full);
int bsr_rs_request_target(struct bsr_peer_device *pd);
int bsr_rs_send_new_uuids(struct bsr_peer_device *pd);
struct crypto_shash;
int bsr_rs_verify_start(struct bsr_peer_device *pd, struct crypto_shash *tfm,
			u64 start, u64 stop);
int bsr_rs_verify_stop(struct bsr_peer_device *pd);
/* A role change: diverge from peers that are not connected now. */
void bsr_rs_diverge_unconnected(struct bsr_peer_device *pd);
bool bsr_rs_is_target(struct bsr_peer_device *pd);

#endif /* _BSR_RESYNC_H */
