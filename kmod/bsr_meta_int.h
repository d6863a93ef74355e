/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Private to the metadata code (bsr_meta.c, bsr_actlog.c, bsr_bitmap.c):
 * on-disk structures of format 1 and struct bsr_backing.
 * The format is documented in docs/metadata.md.
 */
#ifndef _BSR_META_INT_H
#define _BSR_META_INT_H

#include <linux/types.h>
#include <linux/blkdev.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/list.h>
#include <linux/build_bug.h>
#include "bsr_meta.h"

#define BSR_MD_MAGIC		0x4D525342U	/* "BSRM" */
#define BSR_MD_VERSION		1
#define BSR_MD_BLOCK		4096
#define BSR_MD_BLOCK_SHIFT	12
#define BSR_BM_GRANULARITY	4096		/* bytes of data per bit */
#define BSR_BM_BLOCK_BITS	(BSR_MD_BLOCK * 8)	/* bits per bitmap block */
#define BSR_AL_EXTENT_SHIFT	22		/* 4 MiB */
#define BSR_AL_EXT_SECT_SHIFT	(BSR_AL_EXTENT_SHIFT - 9)
#define BSR_BITS_PER_EXTENT	(1U << (BSR_AL_EXTENT_SHIFT - 12))
#define BSR_MD_INDEXED_SLOT	(128ULL << 20)
#define BSR_MD_MIN_DATA		(1ULL << 20)
#define BSR_PEER_UNASSIGNED	0xFFFFFFFFU

#define BSR_AL_MAGIC		0x4C415342U	/* "BSAL" */
#define BSR_AL_MAX_UPDATES	64
#define BSR_AL_CTX_PER_TR	888
#define BSR_AL_EMPTY		0xFFFFFFFFU
#define BSR_AL_BLOCKS_MIN	8
#define BSR_AL_EXTENTS_MIN	67
#define BSR_AL_EXTENTS_MAX	65534
#define BSR_AL_BLOCKS_MAX	(DIV_ROUND_UP(BSR_AL_EXTENTS_MAX, BSR_AL_CTX_PER_TR) + 1)

struct bsr_md_disk_peer {
	__le32 node_id;
	__le32 flags;
	__le64 bitmap_uuid;
	u8 reserved[16];
} __packed;

struct bsr_md_disk_sb {
	__le32 magic;
	__le32 version;
	__le32 crc;
	__le32 sb_size;
	__le64 data_sectors;
	__le64 current_uuid;
	__le64 device_uuid;
	__le64 history_uuids[BSR_UUID_HISTORY];
	__le32 flags;
	__le32 node_id;
	__le32 max_peers;
	__le32 bm_block_size;
	__le64 al_offset;		/* s64, bytes relative to the sb */
	__le32 al_blocks;
	__le32 al_extents;
	__le32 al_extent_shift;
	__le32 meta_idx;		/* s32 */
	__le64 bm_offset;		/* s64, bytes relative to the sb */
	__le64 bm_slot_bytes;
	__le64 md_size_bytes;
	u8 reserved[0x100 - 0x88];
	struct bsr_md_disk_peer peers[BSR_MAX_PEERS];
	u8 pad[BSR_MD_BLOCK - 0x100 - BSR_MAX_PEERS * 32];
} __packed;

struct bsr_al_disk_update {
	__le32 slot;
	__le32 extent;
} __packed;

struct bsr_al_disk_tr {
	__le32 magic;
	__le32 crc;
	__le64 tr_number;
	__le32 n_updates;
	__le32 ctx_start;
	__le32 ctx_count;
	__le32 al_extents;
	struct bsr_al_disk_update updates[BSR_AL_MAX_UPDATES];
	__le32 context[BSR_AL_CTX_PER_TR];
} __packed;

static_assert(sizeof(struct bsr_md_disk_sb) == BSR_MD_BLOCK);
static_assert(offsetof(struct bsr_md_disk_sb, md_size_bytes) == 0x80);
static_assert(offsetof(struct bsr_md_disk_sb, peers) == 0x100);
static_assert(sizeof(struct bsr_al_disk_tr) == BSR_MD_BLOCK);

struct bsr_md_peer {
	u32 node_id;
	u32 flags;
	u64 bitmap_uuid;
};

/* The superblock in memory, checked and in CPU byte order. */
struct bsr_md_sb {
	u64 data_sectors;
	u64 current_uuid;
	u64 device_uuid;
	u64 history_uuids[BSR_UUID_HISTORY];
	u32 flags;
	u32 node_id;
	u32 max_peers;
	u32 al_blocks;
	u32 al_extents;
	s32 meta_idx;
	s64 al_offset;
	s64 bm_offset;
	u64 bm_slot_bytes;
	u64 md_size_bytes;
	struct bsr_md_peer peers[BSR_MAX_PEERS];
};

struct bsr_al_slot {
	struct hlist_node hash;
	struct list_head idle;		/* on al_idle while refcnt == 0 */
	u32 extent;			/* BSR_AL_EMPTY when free */
	u32 refcnt;
	bool committed;			/* its transaction is on disk */
};

struct bsr_backing {
	struct block_device *bdev;	/* data */
	struct block_device *md_bdev;	/* == bdev for internal metadata */
	fmode_t mode;
	char backing_path[BSR_PATH_LEN];
	char meta_path[BSR_PATH_LEN];
	u64 sb_offset;			/* bytes on md_bdev */
	sector_t capacity;
	bool md_flushes;
	bool al_updates;
	bool unclean;
	u32 al_replayed;
	struct bsr_md_stats stats;

	/* superblock: md_mutex serialises writes, md_lock guards readers */
	struct mutex md_mutex;
	spinlock_t md_lock;
	struct bsr_md_sb md;

	/* activity log */
	struct mutex al_mutex;		/* one transaction at a time */
	spinlock_t al_lock;		/* slots, hash, idle list */
	wait_queue_head_t al_wait;
	struct bsr_al_slot *al_slots;
	struct hlist_head *al_hash;
	unsigned int al_hash_bits;
	u32 al_nr;			/* al-extents in use */
	struct list_head al_idle;
	u32 al_idle_count;
	u32 al_used;			/* slots with refcnt > 0 */
	u64 al_tr_number;		/* last written */
	u32 al_ctx_next;
	bool al_failed;
	struct page *al_page;

	/* bitmap: one array per slot, whole 4 KiB blocks, plus their union */
	spinlock_t bm_lock;
	struct mutex bm_io_mutex;
	u64 bm_bits;			/* data blocks of 4 KiB */
	u32 bm_blocks;			/* on-disk blocks per slot in use */
	unsigned long *bm[BSR_MAX_PEERS];
	unsigned long *bm_dirty[BSR_MAX_PEERS];
	u64 bm_count[BSR_MAX_PEERS];
	unsigned long *bm_any;
	u64 bm_any_count;
};

/* bsr_meta.c */
u32 bsr_md_crc(void *block, __le32 *crc_field);
int bsr_md_io(struct bsr_backing *b, struct page *page, u64 offset,
	      blk_opf_t opf);
int bsr_md_read(struct bsr_backing *b, struct page *page, u64 offset);
int bsr_md_write(struct bsr_backing *b, struct page *page, u64 offset,
		 bool fua);
int bsr_md_write_sb(struct bsr_backing *b);
u32 bsr_al_capacity(u32 al_blocks);

/* bsr_bitmap.c */
int bsr_bm_init(struct bsr_backing *b);
void bsr_bm_free(struct bsr_backing *b);
int bsr_bm_read(struct bsr_backing *b);
void bsr_bm_set_all(struct bsr_backing *b);
void bsr_bm_clear_all(struct bsr_backing *b);
void bsr_bm_set_extent(struct bsr_backing *b, u32 extent);
int bsr_bm_write_extent(struct bsr_backing *b, u32 extent);

/* bsr_actlog.c */
int bsr_al_init(struct bsr_backing *b, u32 al_extents);
void bsr_al_free(struct bsr_backing *b);
int bsr_al_replay(struct bsr_backing *b, bool apply);
int bsr_al_write_reset(struct bsr_backing *b);
int bsr_al_resize(struct bsr_backing *b, u32 al_extents);

#endif /* _BSR_META_INT_H */
