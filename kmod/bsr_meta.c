// SPDX-License-Identifier: GPL-2.0
/*
 * bsr: the backing disk -- opening, superblock checks, UUIDs and flags.
 * Format: docs/metadata.md.  Activity log: bsr_actlog.c; bitmap: bsr_bitmap.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/crc32.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/overflow.h>
#include <linux/string.h>
#include "bsr_meta_int.h"

u32 bsr_md_crc(void *block, __le32 *crc_field)
{
	__le32 saved = *crc_field;
	u32 crc;

	*crc_field = 0;
	crc = ~__crc32c_le(~0U, block, BSR_MD_BLOCK);
	*crc_field = saved;
	return crc;
}

int bsr_md_io(struct bsr_backing *b, struct page *page, u64 offset,
	      blk_opf_t opf)
{
	struct bio *bio;
	int err;

	if (offset & (BSR_MD_BLOCK - 1) ||
	    offset + BSR_MD_BLOCK > bdev_nr_bytes(b->md_bdev))
		return -EIO;
	bio = bio_alloc(b->md_bdev, 1, opf, GFP_NOIO);
	bio->bi_iter.bi_sector = offset >> SECTOR_SHIFT;
	__bio_add_page(bio, page, BSR_MD_BLOCK, 0);
	err = submit_bio_wait(bio);
	bio_put(bio);
	return err;
}

int bsr_md_read(struct bsr_backing *b, struct page *page, u64 offset)
{
	return bsr_md_io(b, page, offset, REQ_OP_READ | REQ_META | REQ_SYNC);
}

/* @fua: this write must be stable on return (with md-flushes). */
int bsr_md_write(struct bsr_backing *b, struct page *page, u64 offset,
		 bool fua)
{
	blk_opf_t opf = REQ_OP_WRITE | REQ_META | REQ_SYNC;

	if (fua && b->md_flushes)
		opf |= REQ_PREFLUSH | REQ_FUA;
	return bsr_md_io(b, page, offset, opf);
}

u32 bsr_al_capacity(u32 al_blocks)
{
	return min_t(u32, BSR_AL_EXTENTS_MAX,
		     (al_blocks - 1) * BSR_AL_CTX_PER_TR);
}

static u64 bm_slot_bytes_for(u64 data_bytes)
{
	u64 bits = DIV_ROUND_UP_ULL(data_bytes, BSR_BM_GRANULARITY);

	return max_t(u64, BSR_MD_BLOCK,
		     round_up(DIV_ROUND_UP_ULL(bits, 8), BSR_MD_BLOCK));
}

static void sb_from_disk(struct bsr_md_sb *m, const struct bsr_md_disk_sb *d)
{
	int i;

	m->data_sectors = le64_to_cpu(d->data_sectors);
	m->current_uuid = le64_to_cpu(d->current_uuid);
	m->device_uuid = le64_to_cpu(d->device_uuid);
	for (i = 0; i < BSR_UUID_HISTORY; i++)
		m->history_uuids[i] = le64_to_cpu(d->history_uuids[i]);
	m->flags = le32_to_cpu(d->flags);
	m->node_id = le32_to_cpu(d->node_id);
	m->max_peers = le32_to_cpu(d->max_peers);
	m->al_blocks = le32_to_cpu(d->al_blocks);
	m->al_extents = le32_to_cpu(d->al_extents);
	m->meta_idx = (s32)le32_to_cpu(d->meta_idx);
	m->al_offset = (s64)le64_to_cpu(d->al_offset);
	m->bm_offset = (s64)le64_to_cpu(d->bm_offset);
	m->bm_slot_bytes = le64_to_cpu(d->bm_slot_bytes);
	m->md_size_bytes = le64_to_cpu(d->md_size_bytes);
	for (i = 0; i < BSR_MAX_PEERS; i++) {
		m->peers[i].node_id = le32_to_cpu(d->peers[i].node_id);
		m->peers[i].flags = le32_to_cpu(d->peers[i].flags);
		m->peers[i].bitmap_uuid = le64_to_cpu(d->peers[i].bitmap_uuid);
	}
}

static void sb_to_disk(struct bsr_md_disk_sb *d, const struct bsr_md_sb *m)
{
	int i;

	memset(d, 0, sizeof(*d));
	d->magic = cpu_to_le32(BSR_MD_MAGIC);
	d->version = cpu_to_le32(BSR_MD_VERSION);
	d->sb_size = cpu_to_le32(BSR_MD_BLOCK);
	d->data_sectors = cpu_to_le64(m->data_sectors);
	d->current_uuid = cpu_to_le64(m->current_uuid);
	d->device_uuid = cpu_to_le64(m->device_uuid);
	for (i = 0; i < BSR_UUID_HISTORY; i++)
		d->history_uuids[i] = cpu_to_le64(m->history_uuids[i]);
	d->flags = cpu_to_le32(m->flags);
	d->node_id = cpu_to_le32(m->node_id);
	d->max_peers = cpu_to_le32(m->max_peers);
	d->bm_block_size = cpu_to_le32(BSR_BM_GRANULARITY);
	d->al_offset = cpu_to_le64((u64)m->al_offset);
	d->al_blocks = cpu_to_le32(m->al_blocks);
	d->al_extents = cpu_to_le32(m->al_extents);
	d->al_extent_shift = cpu_to_le32(BSR_AL_EXTENT_SHIFT);
	d->meta_idx = cpu_to_le32((u32)m->meta_idx);
	d->bm_offset = cpu_to_le64((u64)m->bm_offset);
	d->bm_slot_bytes = cpu_to_le64(m->bm_slot_bytes);
	d->md_size_bytes = cpu_to_le64(m->md_size_bytes);
	for (i = 0; i < BSR_MAX_PEERS; i++) {
		const struct bsr_md_peer *p = &m->peers[i];

		if (i >= m->max_peers) {
			d->peers[i].node_id = cpu_to_le32(BSR_PEER_UNASSIGNED);
			continue;
		}
		d->peers[i].node_id = cpu_to_le32(p->node_id);
		d->peers[i].flags = cpu_to_le32(p->flags);
		d->peers[i].bitmap_uuid = cpu_to_le64(p->bitmap_uuid);
	}
	d->crc = cpu_to_le32(bsr_md_crc(d, &d->crc));
}

/* Header checks: magic, version, checksum.  Nothing is trusted before. */
static int sb_check_header(struct bsr_md_disk_sb *d, const char *dev,
			   char *why, size_t len)
{
	u32 magic = le32_to_cpu(d->magic);

	if (magic != BSR_MD_MAGIC) {
		snprintf(why, len, "no bsr metadata found on %s (bad magic 0x%08x)",
			 dev, magic);
		return -ENOMEDIUM;
	}
	if (le32_to_cpu(d->version) != BSR_MD_VERSION) {
		snprintf(why, len, "unsupported bsr metadata version %u on %s",
			 le32_to_cpu(d->version), dev);
		return -EINVAL;
	}
	if (bsr_md_crc(d, &d->crc) != le32_to_cpu(d->crc)) {
		snprintf(why, len, "metadata checksum mismatch on %s", dev);
		return -EINVAL;
	}
	if (le32_to_cpu(d->sb_size) != BSR_MD_BLOCK ||
	    le32_to_cpu(d->bm_block_size) != BSR_BM_GRANULARITY ||
	    le32_to_cpu(d->al_extent_shift) != BSR_AL_EXTENT_SHIFT) {
		snprintf(why, len, "unsupported block sizes in metadata on %s", dev);
		return -EINVAL;
	}
	return 0;
}

static int sb_check_fields(const struct bsr_md_sb *m, s32 want_idx,
			   const char *dev, char *why, size_t len)
{
	int i;

	if (m->meta_idx != want_idx) {
		snprintf(why, len, "metadata on %s was created for meta index %d, not %d",
			 dev, m->meta_idx, want_idx);
		return -EINVAL;
	}
	if (m->max_peers < 1 || m->max_peers > BSR_MAX_PEERS ||
	    m->node_id > BSR_MAX_PEERS) {
		snprintf(why, len, "invalid max-peers %u or node-id %u in metadata on %s",
			 m->max_peers, m->node_id, dev);
		return -EINVAL;
	}
	if (m->al_blocks < BSR_AL_BLOCKS_MIN || m->al_blocks > BSR_AL_BLOCKS_MAX ||
	    m->al_extents < BSR_AL_EXTENTS_MIN ||
	    m->al_extents > bsr_al_capacity(m->al_blocks)) {
		snprintf(why, len, "invalid activity log geometry (%u blocks, %u extents) on %s",
			 m->al_blocks, m->al_extents, dev);
		return -EINVAL;
	}
	for (i = 0; i < m->max_peers; i++) {
		u32 id = m->peers[i].node_id;

		if (id != BSR_PEER_UNASSIGNED && id > BSR_MAX_PEERS) {
			snprintf(why, len, "peer slot %d has invalid node id %u on %s",
				 i, id, dev);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Sizes and offsets against the devices.  All arithmetic on disk values is
 * overflow checked; only when this passes are they used to allocate or
 * to address I/O.
 */
static int sb_check_geometry(const struct bsr_md_sb *m, u64 sb_off,
			     u64 md_bytes, u64 backing_bytes, const char *dev,
			     char *why, size_t len)
{
	u64 al_bytes = (u64)m->al_blocks * BSR_MD_BLOCK;
	u64 data_bytes, bm_bytes, md_size, start, end;

	if (check_mul_overflow(m->data_sectors, (u64)SECTOR_SIZE, &data_bytes) ||
	    data_bytes < BSR_MD_MIN_DATA || m->data_sectors & 7)
		goto bad_size;
	if (m->bm_slot_bytes & (BSR_MD_BLOCK - 1) ||
	    m->bm_slot_bytes > md_bytes ||
	    m->bm_slot_bytes < bm_slot_bytes_for(data_bytes)) {
		snprintf(why, len, "bitmap size inconsistent with the data size on %s", dev);
		return -EINVAL;
	}
	bm_bytes = m->bm_slot_bytes * m->max_peers;	/* both bounded above */
	if (check_add_overflow(BSR_MD_BLOCK + al_bytes, bm_bytes, &md_size) ||
	    md_size != m->md_size_bytes)
		goto bad_offsets;
	if (m->meta_idx == BSR_MD_INDEX_INTERNAL) {
		if (m->al_offset != -(s64)al_bytes ||
		    m->bm_offset != -(s64)(al_bytes + bm_bytes))
			goto bad_offsets;
		if (al_bytes + bm_bytes > sb_off)
			goto too_small;
		start = sb_off - al_bytes - bm_bytes;
		if (data_bytes > start) {
			snprintf(why, len, "data area overlaps the metadata on %s", dev);
			return -EINVAL;
		}
		return 0;
	}
	if (m->al_offset != BSR_MD_BLOCK ||
	    m->bm_offset != (s64)(BSR_MD_BLOCK + al_bytes))
		goto bad_offsets;
	if (m->meta_idx >= 0 && md_size > BSR_MD_INDEXED_SLOT) {
		snprintf(why, len, "metadata larger than a 128 MiB index slot on %s", dev);
		return -EINVAL;
	}
	if (check_add_overflow(sb_off, md_size, &end) || end > md_bytes)
		goto too_small;
	if (data_bytes > backing_bytes) {
		snprintf(why, len, "backing device too small: %llu bytes, metadata says %llu",
			 backing_bytes, data_bytes);
		return -EINVAL;
	}
	return 0;

bad_size:
	snprintf(why, len, "invalid data size %llu sectors in metadata on %s",
		 m->data_sectors, dev);
	return -EINVAL;
bad_offsets:
	snprintf(why, len, "activity log/bitmap offsets inconsistent with their sizes on %s",
		 dev);
	return -EINVAL;
too_small:
	snprintf(why, len, "device too small for its metadata (%s: %llu bytes)",
		 dev, md_bytes);
	return -EINVAL;
}

static int sb_locate(struct bsr_backing *b, s32 idx, char *why, size_t len)
{
	u64 md_bytes = bdev_nr_bytes(b->md_bdev);

	if (idx == BSR_MD_INDEX_INTERNAL)
		b->sb_offset = round_down(md_bytes, BSR_MD_BLOCK) - BSR_MD_BLOCK;
	else if (idx == BSR_MD_INDEX_FLEX_EXT)
		b->sb_offset = 0;
	else
		b->sb_offset = (u64)idx * BSR_MD_INDEXED_SLOT;
	if (md_bytes < BSR_MD_BLOCK || b->sb_offset + BSR_MD_BLOCK > md_bytes) {
		snprintf(why, len, "device too small for its metadata (%s: %llu bytes)",
			 b->meta_path, md_bytes);
		return -EINVAL;
	}
	return 0;
}

static int sb_load(struct bsr_backing *b, s32 idx, char *why, size_t len)
{
	struct bsr_md_disk_sb *d;
	struct page *page;
	int err;

	err = sb_locate(b, idx, why, len);
	if (err)
		return err;
	page = alloc_page(GFP_KERNEL);
	if (!page)
		return -ENOMEM;
	err = bsr_md_read(b, page, b->sb_offset);
	if (err) {
		snprintf(why, len, "cannot read the metadata of %s (error %d)",
			 b->meta_path, err);
		goto out;
	}
	d = page_address(page);
	err = sb_check_header(d, b->meta_path, why, len);
	if (err)
		goto out;
	sb_from_disk(&b->md, d);
	err = sb_check_fields(&b->md, idx, b->meta_path, why, len);
	if (err)
		goto out;
	err = sb_check_geometry(&b->md, b->sb_offset, bdev_nr_bytes(b->md_bdev),
				bdev_nr_bytes(b->bdev), b->meta_path, why, len);
out:
	__free_page(page);
	return err;
}

/* Write the in-memory superblock (stable on return). Caller holds md_mutex. */
int bsr_md_write_sb(struct bsr_backing *b)
{
	struct page *page;
	int err;

	lockdep_assert_held(&b->md_mutex);
	page = alloc_page(GFP_NOIO);
	if (!page)
		return -ENOMEM;
	spin_lock_irq(&b->md_lock);
	sb_to_disk(page_address(page), &b->md);
	spin_unlock_irq(&b->md_lock);
	err = bsr_md_write(b, page, b->sb_offset, true);
	__free_page(page);
	if (err)
		pr_err("%s: superblock write failed: %d\n", b->meta_path, err);
	return err;
}

static struct block_device *open_dev(const char *path, struct bsr_backing *b,
				     void *holder, char *why, size_t len)
{
	struct block_device *bdev = blkdev_get_by_path(path, b->mode, holder);

	if (IS_ERR(bdev))
		snprintf(why, len, "cannot open %s exclusively (error %ld)%s", path,
			 PTR_ERR(bdev),
			 PTR_ERR(bdev) == -EBUSY ? ": in use by another holder" : "");
	return bdev;
}

static void close_devs(struct bsr_backing *b)
{
	if (b->md_bdev && b->md_bdev != b->bdev)
		blkdev_put(b->md_bdev, b->mode);
	if (b->bdev)
		blkdev_put(b->bdev, b->mode);
	b->md_bdev = NULL;
	b->bdev = NULL;
}

static int open_devs(struct bsr_backing *b, const struct bsr_disk_conf *dc,
		     void *holder, char *why, size_t len)
{
	struct block_device *bdev;

	bdev = open_dev(b->backing_path, b, holder, why, len);
	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	b->bdev = bdev;
	if (dc->meta_dev_idx == BSR_MD_INDEX_INTERNAL) {
		b->md_bdev = bdev;
		return 0;
	}
	bdev = open_dev(b->meta_path, b, holder, why, len);
	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	b->md_bdev = bdev;
	if (b->md_bdev == b->bdev) {
		snprintf(why, len, "%s given as both backing and external meta device",
			 b->backing_path);
		return -EINVAL;
	}
	return 0;
}

static struct bsr_backing *backing_alloc(const struct bsr_disk_conf *dc)
{
	struct bsr_backing *b = kzalloc(sizeof(*b), GFP_KERNEL);

	if (!b)
		return NULL;
	b->mode = FMODE_READ | FMODE_WRITE | FMODE_EXCL;
	strscpy(b->backing_path, dc->backing_dev, sizeof(b->backing_path));
	if (dc->meta_dev_idx == BSR_MD_INDEX_INTERNAL)
		strscpy(b->meta_path, dc->backing_dev, sizeof(b->meta_path));
	else
		strscpy(b->meta_path, dc->meta_dev, sizeof(b->meta_path));
	b->md_flushes = dc->md_flushes;
	b->al_updates = dc->al_updates;
	mutex_init(&b->md_mutex);
	spin_lock_init(&b->md_lock);
	mutex_init(&b->al_mutex);
	spin_lock_init(&b->al_lock);
	init_waitqueue_head(&b->al_wait);
	INIT_LIST_HEAD(&b->al_idle);
	spin_lock_init(&b->bm_lock);
	mutex_init(&b->bm_io_mutex);
	return b;
}

static void backing_free(struct bsr_backing *b)
{
	bsr_al_free(b);
	bsr_bm_free(b);
	close_devs(b);
	kfree(b);
}

static int check_conf(struct bsr_backing *b, const struct bsr_disk_conf *dc,
		      char *why, size_t len)
{
	u32 cap = bsr_al_capacity(b->md.al_blocks);

	if (dc->disk_size > b->md.data_sectors) {
		snprintf(why, len, "requested size %llu sectors exceeds the %llu sectors the metadata describes",
			 dc->disk_size, b->md.data_sectors);
		return -EINVAL;
	}
	if (dc->al_extents < BSR_AL_EXTENTS_MIN || dc->al_extents > cap) {
		snprintf(why, len, "al-extents %u outside what the activity log on %s holds (%u..%u)",
			 dc->al_extents, b->meta_path, BSR_AL_EXTENTS_MIN, cap);
		return -EINVAL;
	}
	b->capacity = dc->disk_size ? dc->disk_size : b->md.data_sectors;
	return 0;
}

/*
 * After an unclean shutdown: every extent the AL held is out of sync
 * towards every peer; with al-updates off the whole disk is.
 */
static int recover(struct bsr_backing *b, char *why, size_t len)
{
	u32 flags = b->md.flags;
	int err;

	b->unclean = !(flags & BSR_MDF_AL_CLEAN);
	err = bsr_al_replay(b, !(flags & BSR_MDF_AL_CLEAN) &&
			       !(flags & BSR_MDF_AL_DISABLED));
	if (err)
		goto fail;
	if (!(flags & BSR_MDF_AL_CLEAN) && (flags & BSR_MDF_AL_DISABLED))
		bsr_bm_set_all(b);
	if (!b->unclean)
		return 0;
	pr_warn("%s: unclean shutdown detected, %u activity log extents replayed\n",
		b->backing_path, b->al_replayed);
	if (flags & BSR_MDF_PRIMARY_IND)
		b->md.flags |= BSR_MDF_CRASHED_PRIMARY;
	err = bsr_bm_write_dirty(b);
	if (!err && b->al_updates)
		err = bsr_al_write_reset(b);
	if (!err)
		return 0;
fail:
	snprintf(why, len, "metadata I/O error on %s during recovery (%d)",
		 b->meta_path, err);
	return err;
}

static int mark_in_use(struct bsr_backing *b, const struct bsr_disk_conf *dc)
{
	int err;

	mutex_lock(&b->md_mutex);
	spin_lock_irq(&b->md_lock);
	b->md.flags &= ~(BSR_MDF_AL_CLEAN | BSR_MDF_CLEAN_SHUTDOWN);
	if (b->al_updates)
		b->md.flags &= ~BSR_MDF_AL_DISABLED;
	else
		b->md.flags |= BSR_MDF_AL_DISABLED;
	b->md.al_extents = dc->al_extents;
	spin_unlock_irq(&b->md_lock);
	err = bsr_md_write_sb(b);
	mutex_unlock(&b->md_mutex);
	return err;
}

struct bsr_backing *bsr_backing_open(const struct bsr_disk_conf *dc,
				     void *holder, char *why, size_t whylen)
{
	struct bsr_backing *b;
	int err;

	why[0] = '\0';
	b = backing_alloc(dc);
	if (!b)
		return ERR_PTR(-ENOMEM);
	err = open_devs(b, dc, holder, why, whylen);
	if (!err)
		err = sb_load(b, dc->meta_dev_idx, why, whylen);
	if (!err)
		err = check_conf(b, dc, why, whylen);
	/* The metadata is trusted from here on: allocate from it. */
	if (!err) {
		err = bsr_bm_init(b);
		if (!err)
			err = bsr_al_init(b, dc->al_extents);
		if (err)
			snprintf(why, whylen, "out of memory for bitmap/activity log of %s",
				 b->backing_path);
	}
	if (!err) {
		err = bsr_bm_read(b);
		if (err)
			snprintf(why, whylen, "cannot read the bitmap of %s (%d)",
				 b->meta_path, err);
	}
	if (!err)
		err = recover(b, why, whylen);
	if (!err) {
		err = mark_in_use(b, dc);
		if (err)
			snprintf(why, whylen, "cannot write the metadata of %s (%d)",
				 b->meta_path, err);
	}
	if (err) {
		if (!why[0])
			snprintf(why, whylen, "cannot attach %s (%d)", b->backing_path, err);
		backing_free(b);
		return ERR_PTR(err);
	}
	pr_info("%s: attached, %llu sectors, meta %s idx %d, al-extents %u%s\n",
		b->backing_path, (u64)b->capacity, b->meta_path, dc->meta_dev_idx,
		b->al_nr, b->unclean ? ", after unclean shutdown" : "");
	return b;
}

void bsr_backing_close(struct bsr_backing *b)
{
	int err;

	if (!b)
		return;
	err = bsr_bm_write_dirty(b);
	if (!err && b->al_updates)
		err = bsr_al_write_reset(b);
	mutex_lock(&b->md_mutex);
	if (!err && !READ_ONCE(b->al_failed)) {
		spin_lock_irq(&b->md_lock);
		b->md.flags |= BSR_MDF_AL_CLEAN | BSR_MDF_CLEAN_SHUTDOWN;
		spin_unlock_irq(&b->md_lock);
		err = bsr_md_write_sb(b);
	}
	mutex_unlock(&b->md_mutex);
	if (err)
		pr_warn("%s: detached without a clean metadata state (%d)\n",
			b->backing_path, err);
	backing_free(b);
}

int bsr_backing_set_conf(struct bsr_backing *b, const struct bsr_disk_conf *dc)
{
	int err = 0;

	if (dc->al_extents < BSR_AL_EXTENTS_MIN ||
	    dc->al_extents > bsr_al_capacity(b->md.al_blocks))
		return -ERANGE;
	WRITE_ONCE(b->md_flushes, dc->md_flushes);
	if (dc->al_extents != b->al_nr) {
		err = bsr_al_resize(b, dc->al_extents);
		if (err)
			return err;
	}
	if (!!dc->al_updates != b->al_updates) {
		mutex_lock(&b->al_mutex);
		WRITE_ONCE(b->al_updates, dc->al_updates);
		mutex_unlock(&b->al_mutex);
		err = bsr_md_change_flags(b, dc->al_updates ? 0 : BSR_MDF_AL_DISABLED,
					  dc->al_updates ? BSR_MDF_AL_DISABLED : 0);
		if (!err && dc->al_updates)
			err = bsr_al_write_reset(b);
	}
	return err;
}

struct block_device *bsr_backing_bdev(struct bsr_backing *b)
{
	return b->bdev;
}

sector_t bsr_backing_capacity(struct bsr_backing *b)
{
	return b->capacity;
}

void bsr_backing_info(struct bsr_backing *b, struct bsr_md_info *info)
{
	unsigned long irq;
	int i;

	spin_lock_irqsave(&b->md_lock, irq);
	info->current_uuid = b->md.current_uuid;
	info->device_uuid = b->md.device_uuid;
	for (i = 0; i < BSR_UUID_HISTORY; i++)
		info->history_uuids[i] = b->md.history_uuids[i];
	info->flags = b->md.flags;
	info->node_id = b->md.node_id;
	info->max_peers = b->md.max_peers;
	spin_unlock_irqrestore(&b->md_lock, irq);
	info->al_extents = READ_ONCE(b->al_nr);
	info->unclean = b->unclean;
	info->al_replayed = b->al_replayed;
}

struct bsr_md_stats *bsr_backing_stats(struct bsr_backing *b)
{
	return &b->stats;
}

/*
 * A new data generation: the current UUID goes to the history.  Bit 0 of
 * a generated UUID is 1 when it was generated while Primary.
 */
int bsr_md_new_current_uuid(struct bsr_backing *b, bool clear_bitmap)
{
	u64 uuid = get_random_u64() & ~1ULL;
	int err, i;

	if (clear_bitmap) {
		bsr_bm_clear_all(b);
		err = bsr_bm_write_dirty(b);
		if (err)
			return err;
	}
	mutex_lock(&b->md_mutex);
	spin_lock_irq(&b->md_lock);
	if (b->md.flags & BSR_MDF_PRIMARY_IND)
		uuid |= 1;
	for (i = BSR_UUID_HISTORY - 1; i > 0; i--)
		b->md.history_uuids[i] = b->md.history_uuids[i - 1];
	b->md.history_uuids[0] = b->md.current_uuid;
	b->md.current_uuid = uuid;
	if (clear_bitmap)
		for (i = 0; i < b->md.max_peers; i++)
			b->md.peers[i].bitmap_uuid = 0;
	spin_unlock_irq(&b->md_lock);
	err = bsr_md_write_sb(b);
	mutex_unlock(&b->md_mutex);
	return err;
}

int bsr_md_change_flags(struct bsr_backing *b, u32 set, u32 clear)
{
	int err;

	mutex_lock(&b->md_mutex);
	spin_lock_irq(&b->md_lock);
	b->md.flags = (b->md.flags & ~clear) | set;
	spin_unlock_irq(&b->md_lock);
	err = bsr_md_write_sb(b);
	mutex_unlock(&b->md_mutex);
	return err;
}

int bsr_md_peer_get(struct bsr_backing *b, int slot, u32 *node_id,
		    u64 *bitmap_uuid, u32 *flags)
{
	unsigned long irq;

	if (slot < 0 || slot >= b->md.max_peers)
		return -EINVAL;
	spin_lock_irqsave(&b->md_lock, irq);
	*node_id = b->md.peers[slot].node_id;
	*bitmap_uuid = b->md.peers[slot].bitmap_uuid;
	*flags = b->md.peers[slot].flags;
	spin_unlock_irqrestore(&b->md_lock, irq);
	return 0;
}

int bsr_md_peer_update(struct bsr_backing *b, int slot, u64 bitmap_uuid,
		       u32 flags)
{
	int err;

	if (slot < 0 || slot >= b->md.max_peers)
		return -EINVAL;
	mutex_lock(&b->md_mutex);
	spin_lock_irq(&b->md_lock);
	b->md.peers[slot].bitmap_uuid = bitmap_uuid;
	b->md.peers[slot].flags = flags;
	spin_unlock_irq(&b->md_lock);
	err = bsr_md_write_sb(b);
	mutex_unlock(&b->md_mutex);
	return err;
}

int bsr_bm_slot(struct bsr_backing *b, u32 peer_node_id)
{
	unsigned long irq;
	int i, slot = -ENOENT;

	spin_lock_irqsave(&b->md_lock, irq);
	for (i = 0; i < b->md.max_peers; i++) {
		if (b->md.peers[i].node_id == peer_node_id) {
			slot = i;
			break;
		}
	}
	spin_unlock_irqrestore(&b->md_lock, irq);
	return slot;
}

/* The slot of @peer_node_id, giving it the first free one if it has none. */
int bsr_bm_slot_assign(struct bsr_backing *b, u32 peer_node_id)
{
	int i, slot, err;

	if (peer_node_id > BSR_MAX_PEERS || peer_node_id == b->md.node_id)
		return -EINVAL;
	mutex_lock(&b->md_mutex);
	slot = bsr_bm_slot(b, peer_node_id);
	if (slot >= 0)
		goto out;
	slot = -ENOSPC;
	spin_lock_irq(&b->md_lock);
	for (i = 0; i < b->md.max_peers; i++) {
		if (b->md.peers[i].node_id == BSR_PEER_UNASSIGNED) {
			b->md.peers[i].node_id = peer_node_id;
			b->md.peers[i].flags = 0;
			b->md.peers[i].bitmap_uuid = 0;
			slot = i;
			break;
		}
	}
	spin_unlock_irq(&b->md_lock);
	if (slot >= 0) {
		err = bsr_md_write_sb(b);
		if (err)
			slot = err;
	}
out:
	mutex_unlock(&b->md_mutex);
	return slot;
}
