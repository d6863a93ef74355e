// SPDX-License-Identifier: GPL-2.0
/*
 * The bsr handshake, run on the data stream right after both streams are
 * paired.  Both sides send, then read, in the same order:
 *
 *   P_FEATURES                       versions, node ids, cram-hmac-alg
 *   P_AUTH_CHALLENGE, P_AUTH_RESPONSE only with a shared secret
 *   P_SIZES + P_UUIDS per volume, P_STATE, P_HS_DONE
 *
 * Then each side decides, from the same facts seen from its own end, what
 * the volumes need (docs/protocol.md has the decision table).  A refusal
 * that retrying cannot cure (versions, node ids, sizes, split brain,
 * unrelated data) returns -ENOTRECOVERABLE: the connection goes
 * StandAlone.  Failed authentication returns -EACCES: it is retried.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/random.h>
#include <linux/slab.h>
#include <crypto/hash.h>
#include <crypto/algapi.h>
#include "bsr_transport.h"

#define UUID_JUST_CREATED	4ULL

enum hs_decision {
	HS_NO_SYNC,
	HS_NO_DISK,
	HS_BM_SOURCE,
	HS_BM_TARGET,
	HS_FULL_SOURCE,
	HS_FULL_TARGET,
	HS_SPLIT_BRAIN,
	HS_UNRELATED,
};

static const char * const hs_names[] = {
	[HS_NO_SYNC] = "no resync",
	[HS_NO_DISK] = "no resync (a side has no disk)",
	[HS_BM_SOURCE] = "bitmap-based resync, this node is SyncSource",
	[HS_BM_TARGET] = "bitmap-based resync, this node is SyncTarget",
	[HS_FULL_SOURCE] = "full resync, this node is SyncSource",
	[HS_FULL_TARGET] = "full resync, this node is SyncTarget",
	[HS_SPLIT_BRAIN] = "split brain",
	[HS_UNRELATED] = "unrelated data",
};

struct hs_ctx {
	struct bsr_net *n;
	u32 count;
	struct bsr_hs_vol *me;		/* count entries */
	struct bsr_hs_vol *peer;	/* same volumes, filled from the wire */
	u32 my_role;
	u32 peer_role;
	u32 peer_flags;
	bool online;		/* one volume joins a Connected connection */
};

/* ------------------------------------------------------------ helpers */

int bsr_hs_alloc_hmac(const char *alg, struct crypto_shash **tfm,
		      char *why, size_t whylen)
{
	char name[BSR_ALG_LEN + 8];
	struct crypto_shash *t;

	if (!strncmp(alg, "hmac(", 5))
		strscpy(name, alg, sizeof(name));
	else
		snprintf(name, sizeof(name), "hmac(%s)", alg);
	t = crypto_alloc_shash(name, 0, 0);
	if (IS_ERR(t)) {
		snprintf(why, whylen, "cram-hmac-alg '%s' is not available (%ld)",
			 alg, PTR_ERR(t));
		return PTR_ERR(t);
	}
	if (crypto_shash_digestsize(t) > BSR_MAX_DIGEST ||
	    crypto_shash_digestsize(t) < 16) {
		snprintf(why, whylen, "cram-hmac-alg '%s': digest size %u not supported",
			 alg, crypto_shash_digestsize(t));
		crypto_free_shash(t);
		return -EINVAL;
	}
	*tfm = t;
	return 0;
}

static int expect(struct bsr_net *n, enum bsr_packet cmd,
		  struct bsr_pkt_hdr *h)
{
	int err = bsr_recv_pkt(n, &n->data, h, bsr_ds_to_jiffies(n->nc.timeout));

	if (err == -EAGAIN)
		return -ETIMEDOUT;
	if (err)
		return err;
	if (be16_to_cpu(h->command) != cmd)
		return bsr_proto_err(n, &n->data,
				     "unexpected command during the handshake", h);
	return 0;
}

static const char *alg_name(struct bsr_net *n)
{
	return n->hmac ? crypto_tfm_alg_name(crypto_shash_tfm(n->hmac)) : "";
}

/* ----------------------------------------------------------- features */

static int refuse(struct bsr_net *n, const char *fmt, ...)
{
	struct va_format vaf;
	va_list args;

	va_start(args, fmt);
	vaf.fmt = fmt;
	vaf.va = &args;
	pr_err("%s peer %u: refusing the connection: %pV\n", n->res_name,
	       n->peer_node_id, &vaf);
	va_end(args);
	return -ENOTRECOVERABLE;
}

/* A volume's refusal: the connection's, or only the volume's (online). */
static int refuse_vol(struct hs_ctx *hc, const char *fmt, ...)
{
	struct va_format vaf;
	va_list args;

	va_start(args, fmt);
	vaf.fmt = fmt;
	vaf.va = &args;
	pr_err("%s peer %u: %s: %pV\n", hc->n->res_name, hc->n->peer_node_id,
	       hc->online ? "not replicating the volume" :
			    "refusing the connection", &vaf);
	va_end(args);
	return -ENOTRECOVERABLE;
}

static int exchange_features(struct hs_ctx *hc)
{
	struct bsr_net *n = hc->n;
	struct p_features f = {
		.proto_min = cpu_to_be32(BSR_PROTO_VERSION_MIN),
		.proto_max = cpu_to_be32(BSR_PROTO_VERSION_MAX),
		.features = cpu_to_be32(BSR_FF_KNOWN),
		.sender_node_id = cpu_to_be32(n->my_node_id),
		.receiver_node_id = cpu_to_be32(n->peer_node_id),
		.volumes = cpu_to_be32(hc->count),
	};
	struct p_features *p = n->data.rbuf;
	struct bsr_pkt_hdr h;
	u32 pmin, pmax, agreed;
	int err;

	strscpy(f.auth_alg, alg_name(n), sizeof(f.auth_alg));
	strscpy(f.res_name, n->res_name, sizeof(f.res_name));
	err = bsr_send(&n->data, P_FEATURES, BSR_VOL_NONE, &f, sizeof(f));
	if (!err)
		err = expect(n, P_FEATURES, &h);
	if (err)
		return err;
	p->auth_alg[BSR_ALG_LEN - 1] = 0;
	p->res_name[sizeof(p->res_name) - 1] = 0;
	pmin = be32_to_cpu(p->proto_min);
	pmax = be32_to_cpu(p->proto_max);
	agreed = min_t(u32, pmax, BSR_PROTO_VERSION_MAX);
	if (pmin > pmax || agreed < max_t(u32, pmin, BSR_PROTO_VERSION_MIN))
		return refuse(n, "incompatible protocol versions: this node %u-%u, peer %u-%u",
			      BSR_PROTO_VERSION_MIN, BSR_PROTO_VERSION_MAX,
			      pmin, pmax);
	if (be32_to_cpu(p->sender_node_id) != n->peer_node_id)
		return refuse(n, "the peer has node-id %u, but peer-node-id %u is configured",
			      be32_to_cpu(p->sender_node_id), n->peer_node_id);
	if (be32_to_cpu(p->receiver_node_id) != n->my_node_id)
		return refuse(n, "the peer expects node-id %u, but this node has node-id %u",
			      be32_to_cpu(p->receiver_node_id), n->my_node_id);
	if (strcmp(p->auth_alg, alg_name(n))) {
		pr_err("%s peer %u: authentication failed: the peer uses cram-hmac-alg '%s', this node '%s'\n",
		       n->res_name, n->peer_node_id, p->auth_alg, alg_name(n));
		return -EACCES;
	}
	n->agreed_proto = agreed;
	return 0;
}

/* --------------------------------------------------------------- auth */

static int hmac_of(struct bsr_net *n, const u8 *nonce, u32 node_id, u8 *out)
{
	SHASH_DESC_ON_STACK(desc, n->hmac);
	__be32 id = cpu_to_be32(node_id);
	int err;

	desc->tfm = n->hmac;
	err = crypto_shash_init(desc) ?:
	      crypto_shash_update(desc, nonce, BSR_NONCE_LEN) ?:
	      crypto_shash_update(desc, (u8 *)&id, sizeof(id)) ?:
	      crypto_shash_final(desc, out);
	shash_desc_zero(desc);
	return err;
}

/*
 * Challenge/response in both directions: each side signs the other's
 * nonce together with its own node id, so a reflected answer fails.
 */
static int authenticate(struct bsr_net *n)
{
	u8 mine[BSR_NONCE_LEN], theirs[BSR_NONCE_LEN];
	u8 digest[BSR_MAX_DIGEST], want[BSR_MAX_DIGEST];
	u32 dlen = crypto_shash_digestsize(n->hmac);
	struct bsr_pkt_hdr h;
	int err;

	err = crypto_shash_setkey(n->hmac, n->nc.shared_secret,
				  strnlen(n->nc.shared_secret,
					  sizeof(n->nc.shared_secret)));
	if (err)
		return err;
	get_random_bytes(mine, sizeof(mine));
	err = bsr_send(&n->data, P_AUTH_CHALLENGE, BSR_VOL_NONE, mine,
		       sizeof(mine));
	if (!err)
		err = expect(n, P_AUTH_CHALLENGE, &h);
	if (err)
		return err;
	memcpy(theirs, n->data.rbuf, sizeof(theirs));
	if (!memcmp(theirs, mine, sizeof(mine))) {
		pr_err("%s peer %u: authentication failed: the peer sent our own challenge\n",
		       n->res_name, n->peer_node_id);
		return -EACCES;
	}
	err = hmac_of(n, theirs, n->my_node_id, digest) ?:
	      bsr_send(&n->data, P_AUTH_RESPONSE, BSR_VOL_NONE, digest, dlen) ?:
	      expect(n, P_AUTH_RESPONSE, &h) ?:
	      hmac_of(n, mine, n->peer_node_id, want);
	if (err)
		return err;
	if (be32_to_cpu(h.length) != dlen ||
	    crypto_memneq(n->data.rbuf, want, dlen)) {
		pr_err("%s peer %u: authentication failed (wrong shared-secret?)\n",
		       n->res_name, n->peer_node_id);
		return -EACCES;
	}
	pr_info("%s peer %u: peer authenticated using %s\n", n->res_name,
		n->peer_node_id, alg_name(n));
	return 0;
}

/* ------------------------------------------------------------ volumes */

void bsr_hs_snapshot(struct bsr_net *n, struct bsr_peer_device *pd,
		     struct bsr_hs_vol *v)
{
	struct bsr_device *dev = pd->device;
	struct bsr_md_info md;
	u32 nid, flags;
	int slot;

	v->volume = dev->volume;
	v->present = true;
	v->disk_state = READ_ONCE(dev->disk_state);
	if (!bsr_get_ldev(dev))
		return;
	v->has_disk = true;
	v->max_sectors = bsr_backing_capacity(dev->backing);
	v->cur_sectors = bsr_dev_capacity(dev);
	v->user_sectors = dev->disk_conf.disk_size;
	bsr_backing_info(dev->backing, &md);
	v->current_uuid = md.current_uuid;
	memcpy(v->history, md.history_uuids, sizeof(v->history));
	v->md_flags = md.flags;
	slot = bsr_bm_slot(dev->backing, n->peer_node_id);
	if (slot >= 0 &&
	    !bsr_md_peer_get(dev->backing, slot, &nid, &v->bitmap_uuid, &flags))
		v->oos_sectors = bsr_bm_oos_sectors(dev->backing, slot);
	bsr_put_ldev(dev);
}

static int snapshot(struct hs_ctx *hc)
{
	struct bsr_connection *c = hc->n->conn;
	struct bsr_peer_device *pd;
	u32 i = 0;

	if (!mutex_trylock(&bsr_cfg_mutex)) {
		while (!mutex_trylock(&bsr_cfg_mutex)) {
			if (bsr_should_stop(hc->n))
				return -EINTR;
			schedule_timeout_interruptible(msecs_to_jiffies(5));
		}
	}
	list_for_each_entry(pd, &c->peer_devices, list)
		hc->count++;
	hc->me = kcalloc(max(hc->count, 1U), sizeof(*hc->me), GFP_NOIO);
	hc->peer = kcalloc(max(hc->count, 1U), sizeof(*hc->peer), GFP_NOIO);
	if (!hc->me || !hc->peer) {
		mutex_unlock(&bsr_cfg_mutex);
		return -ENOMEM;
	}
	list_for_each_entry(pd, &c->peer_devices, list)
		bsr_hs_snapshot(hc->n, pd, &hc->me[i++]);
	hc->my_role = c->resource->role;
	mutex_unlock(&bsr_cfg_mutex);
	return 0;
}

static int send_volumes(struct hs_ctx *hc)
{
	struct bsr_net *n = hc->n;
	struct p_state st = {
		.role = cpu_to_be32(hc->my_role),
		.flags = cpu_to_be32(n->discard_my_data ?
				     BSR_STF_DISCARD_MY_DATA : 0),
	};
	struct p_hs_done done = { .volumes = cpu_to_be32(hc->count) };
	u32 i;
	int err;

	for (i = 0; i < hc->count; i++) {
		struct bsr_hs_vol *v = &hc->me[i];
		struct p_vol_join j;

		bsr_hs_put_vol(v, &j.sizes, &j.uuids);
		err = bsr_send(&n->data, P_SIZES, v->volume, &j.sizes,
			       sizeof(j.sizes)) ?:
		      bsr_send(&n->data, P_UUIDS, v->volume, &j.uuids,
			       sizeof(j.uuids));
		if (err)
			return err;
	}
	return bsr_send(&n->data, P_STATE, BSR_VOL_NONE, &st, sizeof(st)) ?:
	       bsr_send(&n->data, P_HS_DONE, BSR_VOL_NONE, &done, sizeof(done));
}

static struct bsr_hs_vol *peer_vol(struct hs_ctx *hc, u16 volume)
{
	u32 i;

	for (i = 0; i < hc->count; i++)
		if (hc->me[i].volume == volume)
			return &hc->peer[i];
	return NULL;
}

/* This node's facts of one volume as they go on the wire. */
void bsr_hs_put_vol(const struct bsr_hs_vol *v, struct p_sizes *s,
		    struct p_uuids *u)
{
	int k;

	memset(s, 0, sizeof(*s));
	memset(u, 0, sizeof(*u));
	s->max_sectors = cpu_to_be64(v->max_sectors);
	s->cur_sectors = cpu_to_be64(v->cur_sectors);
	s->user_sectors = cpu_to_be64(v->user_sectors);
	u->current_uuid = cpu_to_be64(v->current_uuid);
	u->bitmap_uuid = cpu_to_be64(v->bitmap_uuid);
	u->oos_sectors = cpu_to_be64(v->oos_sectors);
	u->md_flags = cpu_to_be32(v->md_flags);
	u->disk_state = cpu_to_be32(v->disk_state);
	for (k = 0; k < 4; k++)
		u->history[k] = cpu_to_be64(v->history[k]);
}

void bsr_hs_get_sizes(struct bsr_hs_vol *v, const struct p_sizes *s)
{
	v->max_sectors = be64_to_cpu(s->max_sectors);
	v->cur_sectors = be64_to_cpu(s->cur_sectors);
	v->user_sectors = be64_to_cpu(s->user_sectors);
}

/* The peer's P_UUIDS part of volume @volume; -EPROTO for a bad one. */
int bsr_hs_get_uuids(struct bsr_hs_vol *v, u16 volume,
		     const struct p_uuids *u)
{
	u32 ds = be32_to_cpu(u->disk_state);
	int k;

	if (ds > BSR_DISK_STATE_UPTODATE)
		return -EPROTO;
	v->present = true;
	v->volume = volume;
	v->disk_state = ds;
	v->has_disk = bsr_disk_usable(ds);
	v->current_uuid = be64_to_cpu(u->current_uuid);
	v->bitmap_uuid = be64_to_cpu(u->bitmap_uuid);
	v->oos_sectors = be64_to_cpu(u->oos_sectors);
	v->md_flags = be32_to_cpu(u->md_flags);
	for (k = 0; k < 4; k++)
		v->history[k] = be64_to_cpu(u->history[k]);
	return 0;
}

static int take_sizes(struct hs_ctx *hc, struct bsr_pkt_hdr *h)
{
	struct bsr_hs_vol *v = peer_vol(hc, be16_to_cpu(h->volume));

	if (v)	/* else a volume only the peer has: ignored */
		bsr_hs_get_sizes(v, hc->n->data.rbuf);
	return 0;
}

static int take_uuids(struct hs_ctx *hc, struct bsr_pkt_hdr *h)
{
	struct bsr_hs_vol *v = peer_vol(hc, be16_to_cpu(h->volume));
	struct bsr_hs_vol ignored;

	if (bsr_hs_get_uuids(v ?: &ignored, be16_to_cpu(h->volume),
			     hc->n->data.rbuf))
		return bsr_proto_err(hc->n, &hc->n->data, "bad disk state", h);
	return 0;
}

static int receive_volumes(struct hs_ctx *hc)
{
	struct bsr_net *n = hc->n;
	long timeo = bsr_ds_to_jiffies(n->nc.timeout);
	u32 sizes = 0, uuids = 0;
	bool have_state = false;
	struct bsr_pkt_hdr h;
	struct p_state *ps;
	int err;

	for (;;) {
		err = bsr_recv_pkt(n, &n->data, &h, timeo);
		if (err)
			return err == -EAGAIN ? -ETIMEDOUT : err;
		switch (be16_to_cpu(h.command)) {
		case P_SIZES:
			if (have_state || sizes++ != uuids)
				return bsr_proto_err(n, &n->data, "P_SIZES out of order", &h);
			err = take_sizes(hc, &h);
			break;
		case P_UUIDS:
			if (have_state || ++uuids != sizes)
				return bsr_proto_err(n, &n->data, "P_UUIDS out of order", &h);
			err = take_uuids(hc, &h);
			break;
		case P_STATE:
			ps = n->data.rbuf;
			hc->peer_role = be32_to_cpu(ps->role);
			hc->peer_flags = be32_to_cpu(ps->flags);
			if (have_state || hc->peer_role > BSR_ROLE_SECONDARY)
				return bsr_proto_err(n, &n->data, "bad P_STATE", &h);
			have_state = true;
			break;
		case P_HS_DONE:
			if (!have_state || sizes != uuids ||
			    be32_to_cpu(((struct p_hs_done *)n->data.rbuf)->volumes) != sizes)
				return bsr_proto_err(n, &n->data, "P_HS_DONE does not match what was sent", &h);
			return 0;
		default:
			return bsr_proto_err(n, &n->data,
					     "unexpected command during the handshake", &h);
		}
		if (err)
			return err;
	}
}

/* ----------------------------------------------------------- decision */

static bool in_history(const struct bsr_hs_vol *v, u64 uuid)
{
	int k;

	for (k = 0; k < 4; k++)
		if (uuid && v->history[k] == uuid)
			return true;
	return false;
}

/* The decision table of docs/protocol.md; @rule names the row. */
static enum hs_decision decide(const struct bsr_hs_vol *me,
			       const struct bsr_hs_vol *peer, int *rule)
{
	bool me_newer, peer_newer;

	*rule = 10;
	if (!me->has_disk || !peer->has_disk)
		return HS_NO_DISK;
	*rule = 20;
	if (me->current_uuid == UUID_JUST_CREATED &&
	    peer->current_uuid == UUID_JUST_CREATED)
		return HS_NO_SYNC;
	*rule = 30;
	if (me->current_uuid == UUID_JUST_CREATED)
		return HS_FULL_TARGET;
	if (peer->current_uuid == UUID_JUST_CREATED)
		return HS_FULL_SOURCE;
	*rule = 40;
	if (me->current_uuid == peer->current_uuid)
		return HS_NO_SYNC;
	*rule = 50;
	me_newer = me->bitmap_uuid && me->bitmap_uuid == peer->current_uuid;
	peer_newer = peer->bitmap_uuid &&
		     peer->bitmap_uuid == me->current_uuid;
	if (me_newer != peer_newer)
		return me_newer ? HS_BM_SOURCE : HS_BM_TARGET;
	*rule = 60;
	if (me_newer || (me->bitmap_uuid && peer->bitmap_uuid))
		return HS_SPLIT_BRAIN;
	*rule = 70;
	me_newer = in_history(me, peer->current_uuid);
	peer_newer = in_history(peer, me->current_uuid);
	if (me_newer != peer_newer)
		return me_newer ? HS_FULL_SOURCE : HS_FULL_TARGET;
	*rule = 80;
	return HS_UNRELATED;
}

/* Who holds the data that must fit: 1 this node, 2 the peer, 3 both. */
static int data_holders(enum hs_decision d, const struct bsr_hs_vol *me,
			const struct bsr_hs_vol *peer)
{
	switch (d) {
	case HS_BM_SOURCE:
	case HS_FULL_SOURCE:
		return 1;
	case HS_BM_TARGET:
	case HS_FULL_TARGET:
		return 2;
	case HS_NO_SYNC:
		return me->current_uuid == UUID_JUST_CREATED ? 0 : 3;
	default:
		return 0;
	}
}

static int check_sizes(struct hs_ctx *hc, u32 i, enum hs_decision d)
{
	const struct bsr_hs_vol *me = &hc->me[i], *peer = &hc->peer[i];
	int holders = data_holders(d, me, peer);

	if ((holders & 1) && peer->max_sectors < me->cur_sectors)
		return refuse_vol(hc, "volume %u: the peer's disk is too small for the data (%llu < %llu sectors)",
				  me->volume, peer->max_sectors, me->cur_sectors);
	if ((holders & 2) && me->max_sectors < peer->cur_sectors)
		return refuse_vol(hc, "volume %u: the local disk is too small for the peer's data (%llu < %llu sectors)",
				  me->volume, me->max_sectors, peer->cur_sectors);
	return 0;
}

/*
 * Split brain: when exactly one side said discard-my-data (and is
 * Secondary) it becomes SyncTarget -- of a bitmap-based resync when both
 * diverged from the same generation (the union of both bitmaps covers
 * every block either side changed), else of a full one.
 */
static enum hs_decision resolve_split_brain(struct hs_ctx *hc, u32 i)
{
	const struct bsr_hs_vol *me = &hc->me[i], *peer = &hc->peer[i];
	struct bsr_net *n = hc->n;
	bool mine = !hc->online && n->discard_my_data;
	bool theirs = hc->peer_flags & BSR_STF_DISCARD_MY_DATA;
	bool same_base = me->bitmap_uuid && me->bitmap_uuid == peer->bitmap_uuid;

	pr_err("%s/%u peer %u: Split-Brain detected: both nodes changed the data since generation %016llx/%016llx\n",
	       n->res_name, me->volume, n->peer_node_id, me->bitmap_uuid,
	       peer->bitmap_uuid);
	if (mine == theirs) {
		if (mine)
			pr_err("%s/%u peer %u: both nodes asked to discard their data: not resolving\n",
			       n->res_name, me->volume, n->peer_node_id);
		return HS_SPLIT_BRAIN;
	}
	if ((mine && hc->my_role == BSR_ROLE_PRIMARY) ||
	    (theirs && hc->peer_role == BSR_ROLE_PRIMARY)) {
		pr_err("%s/%u peer %u: the node that discards its data must be Secondary: not resolving\n",
		       n->res_name, me->volume, n->peer_node_id);
		return HS_SPLIT_BRAIN;
	}
	pr_warn("%s/%u peer %u: Split-Brain resolved by discard-my-data: %s\n",
		n->res_name, me->volume, n->peer_node_id,
		mine ? "this node discards its changes and becomes SyncTarget" :
		       "the peer discards its changes, this node becomes SyncSource");
	if (mine)
		return same_base ? HS_BM_TARGET : HS_FULL_TARGET;
	return same_base ? HS_BM_SOURCE : HS_FULL_SOURCE;
}

/*
 * Rule 41: equal current UUIDs, yet blocks marked out of sync (an online
 * verify found them): a bitmap-based resync of just those blocks.  The
 * Primary is its source; between two Secondaries the lower node id.
 */
static enum hs_decision verify_resync(struct hs_ctx *hc, u32 i, int *rule)
{
	const struct bsr_hs_vol *me = &hc->me[i], *peer = &hc->peer[i];
	bool source;

	if ((!me->oos_sectors && !peer->oos_sectors) ||
	    me->disk_state != BSR_DISK_STATE_UPTODATE ||
	    peer->disk_state != BSR_DISK_STATE_UPTODATE)
		return HS_NO_SYNC;
	*rule = 41;
	if (hc->my_role == BSR_ROLE_PRIMARY)
		source = true;
	else if (hc->peer_role == BSR_ROLE_PRIMARY)
		source = false;
	else
		source = hc->n->my_node_id < hc->n->peer_node_id;
	return source ? HS_BM_SOURCE : HS_BM_TARGET;
}

/* What the peer device starts as; bsr_resync.c takes it from there. */
static u32 hs_repl_state(enum hs_decision d)
{
	switch (d) {
	case HS_FULL_SOURCE:
		return BSR_REPL_STATE_STARTINGSYNCS;
	case HS_BM_SOURCE:
		return BSR_REPL_STATE_WFBITMAPS;
	case HS_BM_TARGET:
	case HS_FULL_TARGET:
		return BSR_REPL_STATE_WFBITMAPT;
	default:
		return BSR_REPL_STATE_ESTABLISHED;
	}
}

static int decide_volume(struct hs_ctx *hc, u32 i, struct bsr_hs_result *r)
{
	const struct bsr_hs_vol *me = &hc->me[i], *peer = &hc->peer[i];
	struct bsr_net *n = hc->n;
	enum hs_decision d;
	int rule, err;

	r->volume = me->volume;
	r->local_disk = me->has_disk;
	r->repl_state = BSR_REPL_STATE_OFF;
	r->peer_disk = BSR_DISK_STATE_DUNKNOWN;
	if (!peer->present) {
		pr_info("%s/%u peer %u: the peer has no such volume\n",
			n->res_name, me->volume, n->peer_node_id);
		return 0;
	}
	d = decide(me, peer, &rule);
	if (d == HS_NO_SYNC && rule == 40)
		d = verify_resync(hc, i, &rule);
	pr_info("%s/%u peer %u: uuid compare rule %d: %s (local %016llx/%016llx, peer %016llx/%016llx), usable size %llu sectors\n",
		n->res_name, me->volume, n->peer_node_id, rule, hs_names[d],
		me->current_uuid, me->bitmap_uuid, peer->current_uuid,
		peer->bitmap_uuid,
		min_not_zero(me->max_sectors, peer->max_sectors));
	if (d == HS_SPLIT_BRAIN)
		d = resolve_split_brain(hc, i);
	if (d == HS_SPLIT_BRAIN) {
		/* unresolved, like DRBD's call of the split-brain handler */
		bsr_notify_helper(n->conn, me->volume, "split-brain");
		return refuse_vol(hc, "volume %u: split brain detected, %s (resolve it with 'connect --discard-my-data' on the node whose changes are to be thrown away)",
				  me->volume, hc->online ? "the volume stays Off" :
				  "dropping the connection");
	}
	if (d == HS_UNRELATED)
		return refuse_vol(hc, "volume %u: unrelated data", me->volume);
	if ((d == HS_BM_TARGET || d == HS_FULL_TARGET) &&
	    hc->my_role == BSR_ROLE_PRIMARY)
		return refuse_vol(hc, "volume %u: this Primary would have to become SyncTarget; it would need to read the blocks not yet synced from the peer, which bsr does not do (make it Secondary first)",
				  me->volume);
	err = check_sizes(hc, i, d);
	if (err)
		return err;
	r->repl_state = hs_repl_state(d);
	r->peer_disk = peer->disk_state;
	r->peer_uuid = peer->current_uuid;
	r->bitmap_uuid = me->bitmap_uuid;
	return 0;
}

static int decide_all(struct hs_ctx *hc)
{
	struct bsr_net *n = hc->n;
	u32 i;
	int err;

	kfree(n->hs);
	n->hs = kcalloc(max(hc->count, 1U), sizeof(*n->hs), GFP_NOIO);
	n->hs_count = 0;
	if (!n->hs)
		return -ENOMEM;
	for (i = 0; i < hc->count; i++) {
		err = decide_volume(hc, i, &n->hs[i]);
		if (err)
			return err;
	}
	/* after the decisions, so that a split brain is reported as such */
	if (hc->my_role == BSR_ROLE_PRIMARY &&
	    hc->peer_role == BSR_ROLE_PRIMARY)
		return refuse(n, "both nodes are Primary (only one Primary at a time); demote one and connect again");
	n->hs_count = hc->count;
	n->peer_role = hc->peer_role;
	return 0;
}

/*
 * The decision for one volume that joins a connection which is already
 * Connected (bsr_vol_join.c): the same rules as at connect time, with the
 * roles as they are now and no discard-my-data.
 */
int bsr_hs_decide_one(struct bsr_net *n, const struct bsr_hs_vol *me,
		      const struct bsr_hs_vol *peer, u32 my_role,
		      u32 peer_role, struct bsr_hs_result *r)
{
	struct bsr_hs_vol mine = *me, theirs = *peer;
	struct hs_ctx hc = {
		.n = n,
		.count = 1,
		.me = &mine,
		.peer = &theirs,
		.my_role = my_role,
		.peer_role = peer_role,
		.online = true,
	};

	return decide_volume(&hc, 0, r);
}

int bsr_handshake(struct bsr_net *n)
{
	struct hs_ctx hc = { .n = n };
	int err;

	err = snapshot(&hc);
	if (!err)
		err = exchange_features(&hc);
	if (!err && n->hmac)
		err = authenticate(n);
	if (!err)
		err = send_volumes(&hc);
	if (!err)
		err = receive_volumes(&hc);
	if (!err)
		err = decide_all(&hc);
	kfree(hc.me);
	kfree(hc.peer);
	return err;
}
