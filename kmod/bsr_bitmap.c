// SPDX-License-Identifier: GPL-2.0
/*
 * bsr: the out-of-sync bitmap -- one bit per 4 KiB, one slot per peer.
 *
 * Each slot lives in memory as whole 4 KiB blocks (the unit written to
 * disk), with a dirty bit per block and a running count of set bits.  A
 * further bitmap holds the union of all slots so that "out of sync towards
 * anyone" is a counter read, too.  All changes happen under bm_lock, in
 * chunks so that huge ranges do not hold it for long.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/bitops.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include "bsr_meta_int.h"

#define BM_WORDS_PER_BLOCK	(BSR_BM_BLOCK_BITS / BITS_PER_LONG)
#define BM_CHUNK_WORDS		64	/* words changed per lock hold */

int bsr_bm_init(struct bsr_backing *b)
{
	size_t bytes;
	int i;

	b->bm_bits = b->md.data_sectors >> 3;
	b->bm_blocks = DIV_ROUND_UP_ULL(b->bm_bits, BSR_BM_BLOCK_BITS);
	bytes = (size_t)b->bm_blocks * BSR_MD_BLOCK;
	for (i = 0; i < b->md.max_peers; i++) {
		b->bm[i] = kvzalloc(bytes, GFP_KERNEL);
		b->bm_dirty[i] = bitmap_zalloc(b->bm_blocks, GFP_KERNEL);
		if (!b->bm[i] || !b->bm_dirty[i])
			return -ENOMEM;
	}
	b->bm_any = kvzalloc(bytes, GFP_KERNEL);
	return b->bm_any ? 0 : -ENOMEM;
}

void bsr_bm_free(struct bsr_backing *b)
{
	int i;

	for (i = 0; i < BSR_MAX_PEERS; i++) {
		kvfree(b->bm[i]);
		bitmap_free(b->bm_dirty[i]);
		b->bm[i] = NULL;
		b->bm_dirty[i] = NULL;
	}
	kvfree(b->bm_any);
	b->bm_any = NULL;
}

static u64 bm_block_offset(struct bsr_backing *b, int slot, u32 blk)
{
	return b->sb_offset + b->md.bm_offset +
	       (u64)slot * b->md.bm_slot_bytes + (u64)blk * BSR_MD_BLOCK;
}

/* Clear bits at or beyond bm_bits in the last block (garbage on disk). */
static void bm_mask_tail(struct bsr_backing *b, unsigned long *bm)
{
	u64 end = (u64)b->bm_blocks * BSR_BM_BLOCK_BITS;

	if (b->bm_bits < end)
		bitmap_clear(bm, b->bm_bits, end - b->bm_bits);
}

int bsr_bm_read(struct bsr_backing *b)
{
	struct page *page = alloc_page(GFP_KERNEL);
	int slot, err = 0;
	u32 blk, w;

	if (!page)
		return -ENOMEM;
	for (slot = 0; slot < b->md.max_peers && !err; slot++) {
		for (blk = 0; blk < b->bm_blocks; blk++) {
			u64 *buf = page_address(page);
			unsigned long *dst = b->bm[slot] + blk * BM_WORDS_PER_BLOCK;

			err = bsr_md_read(b, page, bm_block_offset(b, slot, blk));
			if (err)
				break;
			for (w = 0; w < BSR_MD_BLOCK / 8; w++)
				le64_to_cpus(&buf[w]);
			bitmap_from_arr64(dst, buf, BSR_BM_BLOCK_BITS);
		}
		bm_mask_tail(b, b->bm[slot]);
	}
	__free_page(page);
	if (err)
		return err;
	for (slot = 0; slot < b->md.max_peers; slot++) {
		for (blk = 0; blk < b->bm_blocks; blk++) {
			size_t o = blk * BM_WORDS_PER_BLOCK;

			b->bm_count[slot] += bitmap_weight(b->bm[slot] + o,
							   BSR_BM_BLOCK_BITS);
			bitmap_or(b->bm_any + o, b->bm_any + o, b->bm[slot] + o,
				  BSR_BM_BLOCK_BITS);
		}
	}
	for (blk = 0; blk < b->bm_blocks; blk++)
		b->bm_any_count += bitmap_weight(b->bm_any + blk * BM_WORDS_PER_BLOCK,
						 BSR_BM_BLOCK_BITS);
	return 0;
}

static void bm_word_set(struct bsr_backing *b, int slot, size_t w,
			unsigned long mask)
{
	unsigned long newly = mask & ~b->bm[slot][w];

	if (!newly)
		return;
	b->bm[slot][w] |= newly;
	b->bm_count[slot] += hweight_long(newly);
	newly &= ~b->bm_any[w];
	b->bm_any[w] |= newly;
	b->bm_any_count += hweight_long(newly);
}

static void bm_word_clear(struct bsr_backing *b, int slot, size_t w,
			  unsigned long mask)
{
	unsigned long gone = mask & b->bm[slot][w];
	unsigned long others = 0;
	int s;

	if (!gone)
		return;
	b->bm[slot][w] &= ~gone;
	b->bm_count[slot] -= hweight_long(gone);
	for (s = 0; s < b->md.max_peers; s++)
		if (s != slot)
			others |= b->bm[s][w];
	gone &= ~others;
	b->bm_any[w] &= ~gone;
	b->bm_any_count -= hweight_long(gone);
}

/* Set or clear bits [first, last] of @slot. */
static void bm_change(struct bsr_backing *b, int slot, u64 first, u64 last,
		      bool set)
{
	size_t w = first / BITS_PER_LONG, last_w = last / BITS_PER_LONG;
	unsigned long irq;

	while (w <= last_w) {
		size_t stop = min_t(size_t, last_w, w + BM_CHUNK_WORDS - 1);
		size_t blk;

		spin_lock_irqsave(&b->bm_lock, irq);
		for (; w <= stop; w++) {
			unsigned long mask = ~0UL;

			if (w == first / BITS_PER_LONG)
				mask &= BITMAP_FIRST_WORD_MASK(first);
			if (w == last_w)
				mask &= BITMAP_LAST_WORD_MASK(last + 1);
			if (set)
				bm_word_set(b, slot, w, mask);
			else
				bm_word_clear(b, slot, w, mask);
			blk = w / BM_WORDS_PER_BLOCK;
			__set_bit(blk, b->bm_dirty[slot]);
		}
		spin_unlock_irqrestore(&b->bm_lock, irq);
	}
}

static bool bm_slot_ok(struct bsr_backing *b, int slot)
{
	return !WARN_ON_ONCE(slot < 0 || slot >= b->md.max_peers);
}

/* Any 4 KiB block the range touches becomes out of sync. */
void bsr_bm_set(struct bsr_backing *b, int slot, sector_t sector,
		unsigned int nr)
{
	u64 first = sector >> 3, last = (sector + nr - 1) >> 3;

	if (!nr || !bm_slot_ok(b, slot) || first >= b->bm_bits)
		return;
	bm_change(b, slot, first, min(last, b->bm_bits - 1), true);
}

/* Only blocks the range covers completely become in sync. */
void bsr_bm_clear(struct bsr_backing *b, int slot, sector_t sector,
		  unsigned int nr)
{
	u64 first = DIV_ROUND_UP_ULL(sector, 8), end = (sector + nr) >> 3;

	if (!bm_slot_ok(b, slot))
		return;
	end = min(end, b->bm_bits);
	if (first >= end)
		return;
	bm_change(b, slot, first, end - 1, false);
}

u64 bsr_bm_oos_sectors(struct bsr_backing *b, int slot)
{
	if (!bm_slot_ok(b, slot))
		return 0;
	return READ_ONCE(b->bm_count[slot]) << 3;
}

u64 bsr_bm_oos_sectors_any(struct bsr_backing *b)
{
	return READ_ONCE(b->bm_any_count) << 3;
}

void bsr_bm_set_all(struct bsr_backing *b)
{
	int slot;

	for (slot = 0; slot < b->md.max_peers; slot++)
		bm_change(b, slot, 0, b->bm_bits - 1, true);
}

void bsr_bm_clear_all(struct bsr_backing *b)
{
	int slot;

	for (slot = 0; slot < b->md.max_peers; slot++)
		bm_change(b, slot, 0, b->bm_bits - 1, false);
}

void bsr_bm_set_extent(struct bsr_backing *b, u32 extent)
{
	u64 first = (u64)extent * BSR_BITS_PER_EXTENT;
	int slot;

	if (first >= b->bm_bits)
		return;
	for (slot = 0; slot < b->md.max_peers; slot++)
		bm_change(b, slot, first,
			  min(first + BSR_BITS_PER_EXTENT, b->bm_bits) - 1, true);
}

/* Write block @blk of @slot if it is dirty.  Returns 1 if written. */
static int bm_write_block(struct bsr_backing *b, int slot, u32 blk,
			  struct page *page)
{
	u64 *buf = page_address(page);
	int err, w;

	spin_lock_irq(&b->bm_lock);
	if (!__test_and_clear_bit(blk, b->bm_dirty[slot])) {
		spin_unlock_irq(&b->bm_lock);
		return 0;
	}
	bitmap_to_arr64(buf, b->bm[slot] + blk * BM_WORDS_PER_BLOCK,
			BSR_BM_BLOCK_BITS);
	spin_unlock_irq(&b->bm_lock);
	for (w = 0; w < BSR_MD_BLOCK / 8; w++)
		cpu_to_le64s(&buf[w]);
	err = bsr_md_write(b, page, bm_block_offset(b, slot, blk), false);
	if (err) {
		spin_lock_irq(&b->bm_lock);
		__set_bit(blk, b->bm_dirty[slot]);
		spin_unlock_irq(&b->bm_lock);
		return err;
	}
	atomic64_inc(&b->stats.bm_writes);
	return 1;
}

int bsr_bm_write_dirty(struct bsr_backing *b)
{
	struct page *page = alloc_page(GFP_NOIO);
	bool wrote = false;
	int slot, ret = 0;
	u32 blk;

	if (!page)
		return -ENOMEM;
	mutex_lock(&b->bm_io_mutex);
	for (slot = 0; slot < b->md.max_peers && ret >= 0; slot++) {
		for (blk = 0; blk < b->bm_blocks; blk++) {
			ret = bm_write_block(b, slot, blk, page);
			if (ret < 0)
				break;
			wrote |= ret;
		}
	}
	if (ret >= 0 && wrote && READ_ONCE(b->md_flushes))
		ret = blkdev_issue_flush(b->md_bdev);
	mutex_unlock(&b->bm_io_mutex);
	__free_page(page);
	return ret < 0 ? ret : 0;
}

/*
 * Before @extent leaves the activity log its bitmap block must be on disk
 * in every slot; the caller's AL transaction (PREFLUSH) makes it stable.
 */
int bsr_bm_write_extent(struct bsr_backing *b, u32 extent)
{
	u64 bit = (u64)extent * BSR_BITS_PER_EXTENT;
	u32 blk = bit / BSR_BM_BLOCK_BITS;
	struct page *page;
	int slot, ret = 0;

	if (bit >= b->bm_bits)
		return 0;
	page = alloc_page(GFP_NOIO);
	if (!page)
		return -ENOMEM;
	mutex_lock(&b->bm_io_mutex);
	for (slot = 0; slot < b->md.max_peers && ret >= 0; slot++)
		ret = bm_write_block(b, slot, blk, page);
	mutex_unlock(&b->bm_io_mutex);
	__free_page(page);
	return ret < 0 ? ret : 0;
}

/* ------------------------------------------ walking and exchanging bits */

u64 bsr_bm_bits(struct bsr_backing *b)
{
	return b->bm_bits;
}

/* The first bit at or after @from of @slot that is @set; bm_bits if none. */
u64 bsr_bm_find(struct bsr_backing *b, int slot, u64 from, bool set)
{
	unsigned long irq;
	u64 bit;

	if (!bm_slot_ok(b, slot) || from >= b->bm_bits)
		return b->bm_bits;
	spin_lock_irqsave(&b->bm_lock, irq);
	if (set)
		bit = find_next_bit(b->bm[slot], b->bm_bits, from);
	else
		bit = find_next_zero_bit(b->bm[slot], b->bm_bits, from);
	spin_unlock_irqrestore(&b->bm_lock, irq);
	return min(bit, b->bm_bits);
}

/* Set or clear bits [first, end) of @slot. */
void bsr_bm_change_bits(struct bsr_backing *b, int slot, u64 first, u64 end,
			bool set)
{
	if (!bm_slot_ok(b, slot))
		return;
	end = min(end, b->bm_bits);
	if (first >= end)
		return;
	bm_change(b, slot, first, end - 1, set);
}
