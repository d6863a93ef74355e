/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The attached ("backing") disk of a bsr device: on-disk metadata
 * (superblock, UUIDs, flags), the activity log and the out-of-sync bitmap.
 *
 * This header is the contract between the device/request code (bsr_main.c,
 * bsr_req.c, bsr_nl.c ...) and the metadata code (bsr_meta.c, bsr_actlog.c,
 * bsr_bitmap.c).  The on-disk format is documented in docs/metadata.md and
 * implemented a second time, for userland, in bsr/meta.py.
 */
#ifndef _BSR_META_H
#define _BSR_META_H

#include <linux/types.h>
#include <linux/blkdev.h>
#include "bsr_nl_gen.h"

struct bsr_backing;

/* What the metadata says, as reported in device_info. */
struct bsr_md_info {
	u64 current_uuid;
	u64 device_uuid;
	u64 history_uuids[BSR_UUID_HISTORY];
	u32 flags;		/* BSR_MDF_* */
	u32 node_id;
	u32 max_peers;
	u32 al_extents;
	bool unclean;		/* this attach found an unclean shutdown */
	u32 al_replayed;	/* extents replayed into the bitmap */
};

/* Monotonic counters kept by the metadata code (never reset). */
struct bsr_md_stats {
	atomic64_t al_writes;	/* activity-log transactions written */
	atomic64_t bm_writes;	/* bitmap blocks written */
	atomic64_t al_hits;	/* writes whose extent was already active */
	atomic64_t al_misses;	/* writes that had to activate an extent */
	atomic64_t al_starving;	/* writes that waited for a free AL slot */
};

/*
 * Open the backing and meta devices named in @dc (exclusively, @holder as
 * owner), read and validate the superblock, load the bitmap and, after an
 * unclean shutdown, replay the activity log into the bitmap.  Marks the
 * metadata "in use" (not clean) on disk before returning.
 *
 * On failure returns ERR_PTR and writes a one-line reason into @why.
 * Nothing is ever written to a device whose metadata was refused.
 */
struct bsr_backing *bsr_backing_open(const struct bsr_disk_conf *dc,
				     void *holder, char *why, size_t whylen);

/* Write out AL and bitmap, mark the metadata clean, release the devices. */
void bsr_backing_close(struct bsr_backing *b);

/* Apply changed disk options (al-extents, md-flushes ...). May sleep. */
int bsr_backing_set_conf(struct bsr_backing *b, const struct bsr_disk_conf *dc);

struct block_device *bsr_backing_bdev(struct bsr_backing *b);
sector_t bsr_backing_capacity(struct bsr_backing *b);	/* usable sectors */
void bsr_backing_info(struct bsr_backing *b, struct bsr_md_info *info);
struct bsr_md_stats *bsr_backing_stats(struct bsr_backing *b);
u32 bsr_al_used(struct bsr_backing *b);	/* extents active now */

/*
 * Activity log.  Every application write calls bsr_al_begin_io() before it
 * is submitted to the backing device (may sleep: it may have to write an AL
 * transaction or wait for a free slot) and bsr_al_complete_io() once it
 * completed (any context).  Ranges are in 512-byte sectors.
 */
int bsr_al_begin_io(struct bsr_backing *b, sector_t sector, unsigned int nr);
void bsr_al_complete_io(struct bsr_backing *b, sector_t sector,
			unsigned int nr);
/*
 * The request path's fast path (added by the request code): never sleeps
 * and never writes.  Returns 0 with the range referenced, exactly like
 * bsr_al_begin_io(), when every extent of it is active and committed;
 * -EWOULDBLOCK with nothing referenced otherwise (the caller then uses
 * bsr_al_begin_io() from process context).
 */
int bsr_al_begin_io_nowait(struct bsr_backing *b, sector_t sector,
			   unsigned int nr);

/*
 * Bitmap.  One slot per peer (slot = index of the peer in the superblock,
 * found with bsr_bm_slot()); one bit per 4 KiB.  set/clear may be called
 * from any context; counts are in sectors.
 */
int bsr_bm_slot(struct bsr_backing *b, u32 peer_node_id);	/* -ENOENT */
/*
 * Like bsr_bm_slot(), but a new peer gets the first free slot (may sleep,
 * writes the superblock); -ENOSPC when all max-peers slots are taken.
 */
int bsr_bm_slot_assign(struct bsr_backing *b, u32 peer_node_id);
void bsr_bm_set(struct bsr_backing *b, int slot, sector_t sector,
		unsigned int nr);
void bsr_bm_clear(struct bsr_backing *b, int slot, sector_t sector,
		  unsigned int nr);
u64 bsr_bm_oos_sectors(struct bsr_backing *b, int slot);
u64 bsr_bm_oos_sectors_any(struct bsr_backing *b);	/* union of slots */
int bsr_bm_write_dirty(struct bsr_backing *b);	/* may sleep */

/* Walking a slot and exchanging it with the peer (bsr_resync.c). */
u64 bsr_bm_bits(struct bsr_backing *b);		/* bits per slot */
/* First bit >= @from whose value is @set; bsr_bm_bits() when none. */
u64 bsr_bm_find(struct bsr_backing *b, int slot, u64 from, bool set);
/* Set or clear the bits [first, end) of @slot.  Any context. */
void bsr_bm_change_bits(struct bsr_backing *b, int slot, u64 first, u64 end,
			bool set);

/*
 * UUIDs and flags.  Each call writes the superblock synchronously (with a
 * flush when md-flushes is on) before returning.
 */
int bsr_md_new_current_uuid(struct bsr_backing *b, bool clear_bitmap);
int bsr_md_change_flags(struct bsr_backing *b, u32 set, u32 clear);

/* Per-peer record of bitmap slot @slot: bitmap UUID and BSR_PEER_* flags. */
#define BSR_PEER_CONNECTED	(1U << 0)
#define BSR_PEER_OUTDATED	(1U << 1)
#define BSR_PEER_FULL_SYNC	(1U << 2)
#define BSR_PEER_DEVICE_SEEN	(1U << 3)
int bsr_md_peer_get(struct bsr_backing *b, int slot, u32 *node_id,
		    u64 *bitmap_uuid, u32 *flags);
int bsr_md_peer_update(struct bsr_backing *b, int slot, u64 bitmap_uuid,
		       u32 flags);	/* may sleep, writes the superblock */

/*
 * UUID moves of resync (bsr_uuid.c); each writes the superblock.
 * diverge: the current UUID becomes the bitmap UUID towards @slot and a
 * new current UUID starts, unless a bitmap UUID is kept already (returns
 * 1 when it rotated).  sync_uuid: the bitmap UUID towards @slot, made up
 * if there is none.  become_target: take @uuid as current, no bitmap UUID
 * towards @slot, data inconsistent.  adopt_uuids: take the peer's current
 * UUID and history, data consistent and up to date.  sync_done: the
 * bitmap UUID towards @slot goes to the history.
 */
int bsr_md_diverge(struct bsr_backing *b, int slot);
int bsr_md_sync_uuid(struct bsr_backing *b, int slot, u64 *uuid);
int bsr_md_become_target(struct bsr_backing *b, int slot, u64 uuid);
int bsr_md_adopt_uuids(struct bsr_backing *b, int slot, u64 current_uuid,
		       const u64 *history);
int bsr_md_sync_done(struct bsr_backing *b, int slot);

#endif /* _BSR_META_H */
