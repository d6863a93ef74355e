// SPDX-License-Identifier: GPL-2.0
/*
 * The connection thread of a bsr connection: it connects (or accepts),
 * runs the handshake, then receives and dispatches packets of the data
 * stream until the connection fails or the admin disconnects; after a
 * failure it reconnects on its own.
 *
 * State changes happen here and in the netlink handlers, always under
 * bsr_cfg_mutex, with a notification each.  The thread never blocks on
 * the network while holding the mutex, and it takes the mutex only with
 * mutex_trylock() so that a handler holding it may stop the thread
 * (kthread_stop) without a deadlock.
 *
 * Packet validation order (bsr_recv_pkt): header magic, command, stream,
 * volume, length against the command's bounds and the stream's buffer,
 * sequence number -- and only then the payload is read, into a buffer
 * allocated once per connection.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kthread.h>
#include <linux/delay.h>
#include <linux/slab.h>
#include <linux/sched/mm.h>
#include <crypto/hash.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include "bsr_transport.h"

#define META_RBUF	256

#define D BIT(BSR_STREAM_DATA)
#define M BIT(BSR_STREAM_META)
static const struct bsr_pkt_rule core_rules[P_CORE_LAST + 1] = {
	[P_HELLO] = { 0, 0, 0, 0 },		/* only as first packet */
	[P_FEATURES] = { sizeof(struct p_features), sizeof(struct p_features), 0, D },
	[P_AUTH_CHALLENGE] = { BSR_NONCE_LEN, BSR_NONCE_LEN, 0, D },
	[P_AUTH_RESPONSE] = { 16, BSR_MAX_DIGEST, 0, D },
	[P_SIZES] = { sizeof(struct p_sizes), sizeof(struct p_sizes), 0, D, true },
	[P_UUIDS] = { sizeof(struct p_uuids), sizeof(struct p_uuids), 0, D, true },
	[P_STATE] = { sizeof(struct p_state), sizeof(struct p_state), 0, D },
	[P_HS_DONE] = { sizeof(struct p_hs_done), sizeof(struct p_hs_done), 0, D },
	[P_PING] = { 0, 0, 0, M },
	[P_PING_ACK] = { 0, 0, 0, M },
	[P_DISCONNECT] = { sizeof(struct p_disconnect), sizeof(struct p_disconnect), 0, D },
	[P_VOL_JOIN] = { sizeof(struct p_vol_join), sizeof(struct p_vol_join), 0, D, true },
	[P_VOL_LEAVE] = { sizeof(struct p_vol_leave), sizeof(struct p_vol_leave), 0, D, true },
};
#undef D
#undef M

/* The rule of @cmd, or NULL for a command nobody knows. */
static const struct bsr_pkt_rule *pkt_rule(u16 cmd)
{
	const struct bsr_pkt_rule *r = NULL;

	if (cmd >= 1 && cmd <= P_CORE_LAST)
		r = &core_rules[cmd];
	else if (cmd >= P_DATA && cmd <= P_REPL_LAST)
		r = &bsr_repl_rules[cmd - P_DATA];
	else if (cmd >= P_RS_FIRST && cmd <= P_RS_LAST)
		r = &bsr_rs_rules[cmd - P_RS_FIRST];
	return r && r->streams ? r : NULL;
}

int bsr_proto_err(struct bsr_net *n, struct bsr_stream *st,
		     const char *what, const struct bsr_pkt_hdr *h)
{
	pr_err_ratelimited("%s peer %u: protocol error on %s stream: %s (command %u, volume %u, length %u, seq %u)\n",
			   n->res_name, n->peer_node_id,
			   st->kind == BSR_STREAM_DATA ? "data" : "meta", what,
			   be16_to_cpu(h->command), be16_to_cpu(h->volume),
			   be32_to_cpu(h->length), be32_to_cpu(h->seq));
	return -EPROTO;
}

static int check_hdr(struct bsr_net *n, struct bsr_stream *st,
		     const struct bsr_pkt_hdr *h)
{
	u16 cmd = be16_to_cpu(h->command);
	u16 vol = be16_to_cpu(h->volume);
	u32 len = be32_to_cpu(h->length);
	const struct bsr_pkt_rule *r = pkt_rule(cmd);

	if (be32_to_cpu(h->magic) != BSR_PKT_MAGIC)
		return bsr_proto_err(n, st, "bad magic", h);
	if (!r)
		return bsr_proto_err(n, st, "unknown command", h);
	if (!(r->streams & BIT(st->kind)))
		return bsr_proto_err(n, st, "command not valid on this stream", h);
	if (r->per_volume ? vol >= BSR_MAX_VOLUMES : vol != BSR_VOL_NONE)
		return bsr_proto_err(n, st, "bad volume", h);
	if (len < r->min || len > r->max || min(len, r->head ?: len) > st->rbuf_len)
		return bsr_proto_err(n, st, "bad length", h);
	if (be32_to_cpu(h->seq) != st->recv_seq + 1)
		return bsr_proto_err(n, st, "out of sequence", h);
	return 0;
}

/*
 * Read one packet.  @idle_timeo bounds the wait for its first byte
 * (-EAGAIN when nothing came); the rest must arrive within the net
 * timeout.  The payload lands in st->rbuf -- for commands with a
 * bsr_pkt_rule.head only that many bytes: the handler reads the rest
 * (bsr_pkt_tail() bytes) from the stream itself, straight into its pages.
 */
int bsr_recv_pkt(struct bsr_net *n, struct bsr_stream *st,
		 struct bsr_pkt_hdr *h, long idle_timeo)
{
	long timeo = bsr_ds_to_jiffies(n->nc.timeout);
	int r;

	r = bsr_recv_some(st, h, sizeof(*h), idle_timeo);
	if (r < 0)
		return r;
	if (r == 0)
		return -EAGAIN;
	if (r < sizeof(*h)) {
		r = bsr_recv_full(st, (u8 *)h + r, sizeof(*h) - r, timeo);
		if (r)
			return r;
	}
	r = check_hdr(n, st, h);
	if (r)
		return r;
	r = bsr_recv_full(st, st->rbuf, be32_to_cpu(h->length) -
			  bsr_pkt_tail(h), timeo);
	if (r)
		return r;
	st->recv_seq++;
	return 0;
}

/* Payload bytes of @h that bsr_recv_pkt() left on the stream. */
u32 bsr_pkt_tail(const struct bsr_pkt_hdr *h)
{
	const struct bsr_pkt_rule *r = pkt_rule(be16_to_cpu(h->command));
	u32 len = be32_to_cpu(h->length);

	return r && r->head && len > r->head ? len - r->head : 0;
}

/* First failure wins; wakes whoever is blocked on the streams. */
void bsr_net_fail(struct bsr_net *n, enum bsr_conn_state why)
{
	atomic_cmpxchg(&n->fail, 0, why);
	bsr_tr_abort(n, SHUT_RDWR);
}

static enum bsr_conn_state err_state(int err)
{
	switch (err) {
	case -ECONNRESET:
	case -EPIPE:
		return BSR_CONN_STATE_BROKENPIPE;
	case -ETIMEDOUT:
		return BSR_CONN_STATE_TIMEOUT;
	case -EPROTO:
	case -EACCES:
		return BSR_CONN_STATE_PROTOCOLERROR;
	case -ECONNABORTED:
		return BSR_CONN_STATE_TEARDOWN;
	default:
		return BSR_CONN_STATE_NETWORKFAILURE;
	}
}

/* ------------------------------------------------------ state changes */

/* bsr_cfg_mutex for the thread: false when a stop is under way. */
static bool net_lock(struct bsr_net *n)
{
	while (!mutex_trylock(&bsr_cfg_mutex)) {
		if (bsr_should_stop(n))
			return false;
		usleep_range(5000, 10000);
	}
	return true;
}

static void set_cstate(struct bsr_connection *c, enum bsr_conn_state cs)
{
	lockdep_assert_held(&bsr_cfg_mutex);
	if (c->cstate == cs)
		return;
	c->cstate = cs;
	bsr_notify_connection(c, BSR_NOTIFY_TYPE_CHANGE);
}

static void set_path(struct bsr_path *p, bool established)
{
	if (p->established == established)
		return;
	p->established = established;
	bsr_notify_path(p, BSR_NOTIFY_TYPE_CHANGE);
}

/* Set a peer device's replication and peer-disk state; notify on change. */
void bsr_set_pd_state(struct bsr_peer_device *pd, enum bsr_repl_state rs,
		      enum bsr_disk_state pds)
{
	if (pd->repl_state == rs && pd->peer_disk_state == pds)
		return;
	pd->repl_state = rs;
	pd->peer_disk_state = pds;
	bsr_notify_peer_device(pd, BSR_NOTIFY_TYPE_CHANGE);
}

/* Everything that describes a live link goes back to "unknown". */
static void clear_link_state(struct bsr_connection *c)
{
	struct bsr_peer_device *pd;
	struct bsr_path *p;

	c->peer_role = BSR_ROLE_UNKNOWN;
	c->agreed_proto = 0;
	list_for_each_entry(p, &c->paths, list)
		set_path(p, false);
	list_for_each_entry(pd, &c->peer_devices, list)
		bsr_set_pd_state(pd, BSR_REPL_STATE_OFF, BSR_DISK_STATE_DUNKNOWN);
}

static bool thread_set_cstate(struct bsr_net *n, enum bsr_conn_state cs)
{
	if (!net_lock(n))
		return false;
	set_cstate(n->conn, cs);
	mutex_unlock(&bsr_cfg_mutex);
	return true;
}

/* Snapshot what one attempt needs: options and the path to use. */
static int prepare_attempt(struct bsr_net *n)
{
	struct bsr_connection *c = n->conn;
	struct bsr_path *p;
	u32 count = 0, i = 0;

	if (!net_lock(n))
		return -EINTR;
	n->nc = c->net_conf;
	list_for_each_entry(p, &c->paths, list)
		count++;
	if (!count) {
		mutex_unlock(&bsr_cfg_mutex);
		return -ENOENT;
	}
	n->path_idx = n->passive ? 0 : n->attempts % count;
	list_for_each_entry(p, &c->paths, list) {
		if (i++ != n->path_idx)
			continue;
		memset(&n->addr, 0, sizeof(n->addr));
		memcpy(&n->addr.my, p->my_addr, p->my_addr_len);
		n->addr.my_len = p->my_addr_len;
		memcpy(&n->addr.peer, p->peer_addr, p->peer_addr_len);
		n->addr.peer_len = p->peer_addr_len;
		break;
	}
	mutex_unlock(&bsr_cfg_mutex);
	n->attempts++;
	return 0;
}

static struct bsr_path *path_at(struct bsr_connection *c, u32 idx)
{
	struct bsr_path *p;

	list_for_each_entry(p, &c->paths, list)
		if (!idx--)
			return p;
	return NULL;
}

static bool enter_connected(struct bsr_net *n)
{
	struct bsr_connection *c = n->conn;
	struct bsr_peer_device *pd;
	struct bsr_path *p;
	u32 i;

	if (!net_lock(n))
		return false;
	bsr_vj_reset(n);
	c->peer_role = n->peer_role;
	c->agreed_proto = n->agreed_proto;
	set_cstate(c, BSR_CONN_STATE_CONNECTED);
	p = path_at(c, n->path_idx);
	if (p)
		set_path(p, true);
	for (i = 0; i < n->hs_count; i++) {
		pd = bsr_find_peer_device(c, n->hs[i].volume);
		if (!pd)
			continue;
		pd->peer_current_uuid = n->hs[i].peer_uuid;
		pd->bitmap_uuid = n->hs[i].bitmap_uuid;
		bsr_set_pd_state(pd, n->hs[i].repl_state, n->hs[i].peer_disk);
		/* attached while the handshake ran: it joins now */
		if (!n->hs[i].local_disk && pd->device->backing &&
		    bsr_vj_local(n, pd))
			bsr_net_fail(n, BSR_CONN_STATE_NETWORKFAILURE);
	}
	mutex_unlock(&bsr_cfg_mutex);
	return true;
}

/*
 * After a failed attempt or a lost connection: report why, then
 * Unconnected (or StandAlone after a refusal that retrying cannot fix).
 */
static void leave_connection(struct bsr_net *n, enum bsr_conn_state why,
			     bool fatal)
{
	struct bsr_connection *c = n->conn;

	if (!net_lock(n))
		return;
	if (why != BSR_CONN_STATE_STANDALONE)
		set_cstate(c, why);
	clear_link_state(c);
	if (fatal) {
		set_cstate(c, BSR_CONN_STATE_STANDALONE);
		n->done = true;
	} else {
		set_cstate(c, BSR_CONN_STATE_UNCONNECTED);
		atomic64_inc(&c->reconnects);
	}
	mutex_unlock(&bsr_cfg_mutex);
}

/* ---------------------------------------------------------- the loops */

static int dispatch_connected(struct bsr_net *n, struct bsr_pkt_hdr *h)
{
	struct p_state *ps;
	struct bsr_connection *c = n->conn;
	u16 cmd = be16_to_cpu(h->command);

	if (cmd >= P_DATA && cmd <= P_REPL_LAST)
		return bsr_repl_recv(n, h);
	if (cmd >= P_RS_FIRST && cmd <= P_RS_LAST)
		return bsr_rs_recv(n, h);
	switch (cmd) {
	case P_VOL_JOIN:
	case P_VOL_LEAVE:
		return bsr_vj_recv(n, h);
	case P_DISCONNECT:
		pr_info("%s peer %u: peer disconnects\n", n->res_name,
			n->peer_node_id);
		/* its goodbye wins over the meta stream seeing it close */
		atomic_set(&n->fail, BSR_CONN_STATE_TEARDOWN);
		return -ECONNABORTED;
	case P_STATE:
		ps = n->data.rbuf;
		n->peer_role = be32_to_cpu(ps->role);
		if (n->peer_role > BSR_ROLE_SECONDARY)
			return bsr_proto_err(n, &n->data, "bad role", h);
		if (net_lock(n)) {
			if (c->peer_role != n->peer_role) {
				c->peer_role = n->peer_role;
				bsr_notify_connection(c, BSR_NOTIFY_TYPE_CHANGE);
			}
			mutex_unlock(&bsr_cfg_mutex);
		}
		return 0;
	default:
		return bsr_proto_err(n, &n->data, "unexpected command while connected",
				 h);
	}
}

static void say_goodbye(struct bsr_net *n)
{
	struct p_disconnect p = { .reason = cpu_to_be32(0) };

	mutex_lock(&n->sock_mutex);
	if (n->data.sock)
		WRITE_ONCE(n->data.sock->sk->sk_sndtimeo, HZ / 2);
	mutex_unlock(&n->sock_mutex);
	bsr_send(&n->data, P_DISCONNECT, BSR_VOL_NONE, &p, sizeof(p));
}

static int run_connected(struct bsr_net *n)
{
	struct task_struct *t;
	struct bsr_pkt_hdr h;
	int err;

	err = bsr_repl_start(n);
	if (err)
		return err;
	if (!enter_connected(n)) {
		bsr_repl_stop(n);
		return -EINTR;
	}
	pr_info("%s peer %u: connected (protocol %u)\n", n->res_name,
		n->peer_node_id, n->agreed_proto);
	t = kthread_create(bsr_meta_thread, n, "bsr_m_%.8s_%u", n->res_name,
			   n->peer_node_id);
	if (IS_ERR(t)) {
		bsr_repl_stop(n);
		return PTR_ERR(t);
	}
	get_task_struct(t);
	n->meta_thread = t;
	wake_up_process(t);

	err = bsr_rs_start(n);
	while (!err && !bsr_should_stop(n)) {
		err = bsr_recv_pkt(n, &n->data, &h, MAX_SCHEDULE_TIMEOUT);
		if (!err)
			err = dispatch_connected(n, &h);
	}

	if (bsr_should_stop(n) && !READ_ONCE(n->force))
		say_goodbye(n);
	bsr_tr_abort(n, SHUT_RDWR);
	bsr_rs_stop(n);
	kthread_stop(t);
	put_task_struct(t);
	n->meta_thread = NULL;
	bsr_repl_stop(n);
	return err;
}

static int establish(struct bsr_net *n)
{
	int err;

	if (n->passive) {
		err = bsr_tr_listen(n);
		if (err)
			return err;
		return bsr_tr_accept_pair(n, n->nc.connect_int * HZ);
	}
	return bsr_tr_connect_pair(n);
}

static void wait_retry(struct bsr_net *n)
{
	wait_event_interruptible_timeout(n->wq, bsr_should_stop(n),
					 n->nc.connect_int * HZ);
}

static void log_attempt_error(struct bsr_net *n, int err)
{
	if (err == -ECONNREFUSED || err == -ETIMEDOUT || err == -EINPROGRESS ||
	    err == -EHOSTUNREACH || err == -ENETUNREACH)
		return;	/* the peer is not there (yet): normal */
	pr_warn_ratelimited("%s peer %u: connect attempt failed: %d\n",
			    n->res_name, n->peer_node_id, err);
}

static int conn_thread(void *arg)
{
	struct bsr_net *n = arg;
	unsigned int noreclaim = memalloc_noio_save();
	int err;

	while (!bsr_should_stop(n)) {
		if (!thread_set_cstate(n, BSR_CONN_STATE_CONNECTING))
			break;
		err = prepare_attempt(n);
		if (!err)
			err = establish(n);
		if (bsr_should_stop(n))
			break;
		if (err) {
			if (err != -EAGAIN)
				log_attempt_error(n, err);
			bsr_tr_close(n);
			if (!n->passive || err != -EAGAIN)
				wait_retry(n);
			continue;
		}
		bsr_tr_unlisten(n);
		atomic_set(&n->fail, 0);
		err = bsr_handshake(n);
		if (!err)
			err = run_connected(n);
		if (bsr_should_stop(n))
			break;
		bsr_tr_close(n);
		if (err == -ENOTRECOVERABLE) {
			leave_connection(n, BSR_CONN_STATE_STANDALONE, true);
			break;
		}
		leave_connection(n, atomic_read(&n->fail) ?: err_state(err),
				 false);
		if (!n->passive)
			wait_retry(n);
	}
	bsr_tr_close(n);
	bsr_tr_unlisten(n);
	memalloc_noio_restore(noreclaim);
	return 0;
}

/* ---------------------------------------------- connect / disconnect */

static void free_net(struct bsr_net *n)
{
	if (n->hmac)
		crypto_free_shash(n->hmac);
	kvfree(n->data.rbuf);
	kfree(n->meta.rbuf);
	kfree(n->hs);
	bsr_vj_reset(n);
	if (n->net)
		put_net(n->net);
	kfree(n);
}

static void init_stream(struct bsr_stream *st, struct bsr_connection *c,
			enum bsr_stream_kind kind)
{
	st->kind = kind;
	st->conn = c;
	mutex_init(&st->send_mutex);
}

static struct bsr_net *alloc_net(struct bsr_connection *c, char *why,
				 size_t whylen)
{
	const struct bsr_net_conf *nc = &c->net_conf;
	struct bsr_net *n;
	int err;

	if (!nc->shared_secret[0] != !nc->cram_hmac_alg[0]) {
		snprintf(why, whylen,
			 "%s: shared-secret and cram-hmac-alg go together",
			 c->resource->name);
		return ERR_PTR(-EINVAL);
	}
	n = kzalloc(sizeof(*n), GFP_KERNEL);
	if (!n)
		return ERR_PTR(-ENOMEM);
	n->conn = c;
	n->nc = *nc;
	n->my_node_id = c->resource->opts.node_id;
	n->peer_node_id = c->peer_node_id;
	n->passive = n->my_node_id > n->peer_node_id;
	strscpy(n->res_name, c->resource->name, sizeof(n->res_name));
	init_waitqueue_head(&n->wq);
	INIT_LIST_HEAD(&n->joins);
	mutex_init(&n->sock_mutex);
	init_stream(&n->data, c, BSR_STREAM_DATA);
	init_stream(&n->meta, c, BSR_STREAM_META);
	n->data.rbuf = kvmalloc(BSR_MAX_PAYLOAD, GFP_KERNEL);
	n->data.rbuf_len = BSR_MAX_PAYLOAD;
	n->meta.rbuf = kmalloc(META_RBUF, GFP_KERNEL);
	n->meta.rbuf_len = META_RBUF;
	if (!n->data.rbuf || !n->meta.rbuf) {
		free_net(n);
		return ERR_PTR(-ENOMEM);
	}
	if (nc->cram_hmac_alg[0]) {
		err = bsr_hs_alloc_hmac(nc->cram_hmac_alg, &n->hmac, why,
					whylen);
		if (err) {
			free_net(n);
			return ERR_PTR(err);
		}
	}
	return n;
}

/* Wait for the thread of a connection and free its runtime state. */
static void reap(struct bsr_connection *c)
{
	struct bsr_net *n = c->net;

	kthread_stop(n->thread);
	put_task_struct(n->thread);
	c->net = NULL;
	free_net(n);
}

int bsr_conn_connect(struct bsr_connection *c, struct net *net,
		     bool discard_my_data, char *why, size_t whylen)
{
	struct task_struct *t;
	struct bsr_net *n;

	lockdep_assert_held(&bsr_cfg_mutex);
	if (c->net && !c->net->done) {
		snprintf(why, whylen, "%s: peer %u: already connecting or connected",
			 c->resource->name, c->peer_node_id);
		return -EALREADY;
	}
	if (c->net)
		reap(c);
	if (list_empty(&c->paths)) {
		snprintf(why, whylen, "%s: peer %u: no path configured",
			 c->resource->name, c->peer_node_id);
		return -EINVAL;
	}
	n = alloc_net(c, why, whylen);
	if (IS_ERR(n))
		return PTR_ERR(n);
	n->discard_my_data = discard_my_data;
	n->net = get_net(net);
	bsr_repl_track_peer(c);
	t = kthread_create(conn_thread, n, "bsr_c_%.8s_%u", n->res_name,
			   n->peer_node_id);
	if (IS_ERR(t)) {
		free_net(n);
		return PTR_ERR(t);
	}
	get_task_struct(t);
	n->thread = t;
	c->net = n;
	set_cstate(c, BSR_CONN_STATE_UNCONNECTED);
	wake_up_process(t);
	return 0;
}

/*
 * Stop the connection thread (it says goodbye to the peer unless @force)
 * and go StandAlone.  Holds bsr_cfg_mutex, but never blocks on the
 * network itself: every socket call of the thread is bounded and the
 * sockets are shut down first.
 */
void bsr_conn_disconnect(struct bsr_connection *c, bool force)
{
	struct bsr_net *n = c->net;

	lockdep_assert_held(&bsr_cfg_mutex);
	if (n && !force)
		bsr_repl_drain(c);
	if (n) {
		if (!n->done)
			set_cstate(c, BSR_CONN_STATE_DISCONNECTING);
		WRITE_ONCE(n->force, force);
		WRITE_ONCE(n->stop, true);
		wake_up_all(&n->wq);
		bsr_tr_abort(n, force ? SHUT_RDWR : SHUT_RD);
		reap(c);
	}
	clear_link_state(c);
	set_cstate(c, BSR_CONN_STATE_STANDALONE);
}
