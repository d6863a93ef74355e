// SPDX-License-Identifier: GPL-2.0
/*
 * UUID moves of resync and split brain (bsr_resync.c, bsr_state.c): a
 * bitmap UUID when the data starts to diverge from a peer, the sync UUID a
 * SyncTarget adopts, and the UUIDs it takes over when the resync is done.
 * Every change is written to the superblock before the call returns.
 */
#include <linux/random.h>
#include "bsr_meta_int.h"

static void push_history(struct bsr_md_sb *m, u64 uuid)
{
	int i;

	if (!uuid || m->history_uuids[0] == uuid)
		return;
	for (i = BSR_UUID_HISTORY - 1; i > 0; i--)
		m->history_uuids[i] = m->history_uuids[i - 1];
	m->history_uuids[0] = uuid;
}

static int md_commit(struct bsr_backing *b)
{
	int err = bsr_md_write_sb(b);

	mutex_unlock(&b->md_mutex);
	return err;
}

/*
 * The data starts to diverge from the peer of @slot: unless a bitmap UUID
 * is kept for it already, the current UUID becomes its bitmap UUID and a
 * new current UUID starts.  Returns 1 when it rotated.
 */
int bsr_md_diverge(struct bsr_backing *b, int slot)
{
	u64 uuid = get_random_u64() & ~1ULL;
	int err;

	if (slot < 0 || slot >= b->md.max_peers)
		return -EINVAL;
	mutex_lock(&b->md_mutex);
	spin_lock_irq(&b->md_lock);
	if (b->md.peers[slot].bitmap_uuid || b->md.current_uuid == 4) {
		spin_unlock_irq(&b->md_lock);
		mutex_unlock(&b->md_mutex);
		return 0;
	}
	if (b->md.flags & BSR_MDF_PRIMARY_IND)
		uuid |= 1;
	b->md.peers[slot].bitmap_uuid = b->md.current_uuid;
	push_history(&b->md, b->md.current_uuid);
	b->md.current_uuid = uuid;
	spin_unlock_irq(&b->md_lock);
	err = md_commit(b);
	return err ?: 1;
}

/* The bitmap UUID towards @slot, made up when there is none (full sync). */
int bsr_md_sync_uuid(struct bsr_backing *b, int slot, u64 *uuid)
{
	if (slot < 0 || slot >= b->md.max_peers)
		return -EINVAL;
	mutex_lock(&b->md_mutex);
	spin_lock_irq(&b->md_lock);
	*uuid = b->md.peers[slot].bitmap_uuid;
	if (*uuid) {
		spin_unlock_irq(&b->md_lock);
		mutex_unlock(&b->md_mutex);
		return 0;
	}
	*uuid = (get_random_u64() & ~1ULL) | 2;	/* never 0 nor 4 */
	b->md.peers[slot].bitmap_uuid = *uuid;
	spin_unlock_irq(&b->md_lock);
	return md_commit(b);
}

/*
 * SyncTarget at the start: take @uuid as current UUID (the old one goes
 * to the history), forget the bitmap UUID towards the source and mark the
 * data inconsistent.
 */
int bsr_md_become_target(struct bsr_backing *b, int slot, u64 uuid)
{
	if (slot < 0 || slot >= b->md.max_peers)
		return -EINVAL;
	mutex_lock(&b->md_mutex);
	spin_lock_irq(&b->md_lock);
	if (b->md.current_uuid != uuid) {
		push_history(&b->md, b->md.current_uuid);
		b->md.current_uuid = uuid;
	}
	b->md.peers[slot].bitmap_uuid = 0;
	b->md.flags &= ~(BSR_MDF_CONSISTENT | BSR_MDF_WAS_UP_TO_DATE);
	spin_unlock_irq(&b->md_lock);
	return md_commit(b);
}

/*
 * Take over the peer's UUIDs (resync done, or new-current-uuid
 * --clear-bitmap on the peer): current and history, no bitmap UUID
 * towards it, data consistent and up to date.
 */
int bsr_md_adopt_uuids(struct bsr_backing *b, int slot, u64 current_uuid,
		       const u64 *history)
{
	int i;

	if (slot < 0 || slot >= b->md.max_peers)
		return -EINVAL;
	mutex_lock(&b->md_mutex);
	spin_lock_irq(&b->md_lock);
	if (b->md.current_uuid != current_uuid)
		push_history(&b->md, b->md.current_uuid);
	b->md.current_uuid = current_uuid;
	for (i = 0; i < BSR_UUID_HISTORY && i < 4; i++)
		if (history[i])
			b->md.history_uuids[i] = history[i];
	b->md.peers[slot].bitmap_uuid = 0;
	b->md.flags |= BSR_MDF_CONSISTENT | BSR_MDF_WAS_UP_TO_DATE;
	spin_unlock_irq(&b->md_lock);
	return md_commit(b);
}

/* SyncSource at the end: the bitmap UUID towards @slot goes to history. */
int bsr_md_sync_done(struct bsr_backing *b, int slot)
{
	if (slot < 0 || slot >= b->md.max_peers)
		return -EINVAL;
	mutex_lock(&b->md_mutex);
	spin_lock_irq(&b->md_lock);
	push_history(&b->md, b->md.peers[slot].bitmap_uuid);
	b->md.peers[slot].bitmap_uuid = 0;
	spin_unlock_irq(&b->md_lock);
	return md_commit(b);
}
