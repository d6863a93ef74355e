/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Runtime state of a connection that is not StandAlone, and the TCP
 * transport under it: a listening socket on the path's local address (on
 * the node with the higher node id) or outgoing connections (on the
 * other), two streams per connection (data + meta), bounded send/receive.
 *
 * Who touches what:
 *  - the connection thread (bsr_receiver.c) owns the sockets: it creates,
 *    uses and releases them;
 *  - the meta thread sends and receives on the meta stream only;
 *  - anybody may call bsr_tr_abort() to wake blocked socket calls.
 * Socket pointers change only under sock_mutex.
 */
#ifndef _BSR_TRANSPORT_H
#define _BSR_TRANSPORT_H

#include <linux/net.h>
#include <linux/socket.h>
#include <linux/mutex.h>
#include <linux/wait.h>
#include <linux/sched.h>
#include "bsr_int.h"
#include "bsr_proto.h"

struct crypto_shash;

struct bsr_stream {
	struct socket *sock;
	enum bsr_stream_kind kind;
	struct mutex send_mutex;	/* one packet at a time */
	u32 send_seq;
	u32 recv_seq;
	void *rbuf;			/* payload buffer, rbuf_len bytes */
	size_t rbuf_len;
	struct bsr_connection *conn;	/* statistics */
};

struct bsr_addr {
	struct sockaddr_storage my;
	struct sockaddr_storage peer;
	int my_len;
	int peer_len;
};

/* One handshake's worth of per-volume facts (this node or the peer). */
struct bsr_hs_vol {
	u32 volume;
	bool present;			/* described by its owner */
	bool has_disk;
	u32 disk_state;
	u64 max_sectors, cur_sectors, user_sectors;
	u64 current_uuid, bitmap_uuid, history[4], oos_sectors;
	u32 md_flags;
};

struct bsr_net {
	struct bsr_connection *conn;
	struct net *net;			/* reference held */
	struct task_struct *thread;		/* connection thread */
	struct task_struct *meta_thread;	/* pings, running while Connected */
	wait_queue_head_t wq;
	bool stop;			/* disconnect requested */
	bool force;			/* ... without saying goodbye */
	bool discard_my_data;
	bool passive;			/* listens: higher node id */
	bool done;			/* thread went StandAlone by itself */
	u32 my_node_id;
	u32 peer_node_id;
	char res_name[BSR_NAME_LEN];
	struct bsr_net_conf nc;		/* snapshot at connect/attempt */
	struct bsr_addr addr;		/* path of the current attempt */

	struct mutex sock_mutex;
	struct socket *listen;
	struct socket *pending;		/* accepted data stream, waiting for meta */
	u64 pending_cookie;
	struct bsr_stream data;
	struct bsr_stream meta;

	struct crypto_shash *hmac;	/* NULL without shared-secret */
	atomic_t fail;			/* enum bsr_conn_state of the failure, 0 */
	u32 agreed_proto;
	u32 peer_role;
	u32 path_idx;			/* index of the path in use */
	u32 attempts;

	/* handshake outcome, applied when the connection is Connected */
	struct bsr_hs_result *hs;
	u32 hs_count;

	/* volumes joining while Connected (bsr_vol_join.c), bsr_cfg_mutex */
	struct list_head joins;
	u32 nr_joins;
};

struct bsr_hs_result {
	u32 volume;
	u32 repl_state;			/* enum bsr_repl_state */
	u32 peer_disk;			/* enum bsr_disk_state */
	u64 peer_uuid;
	u64 bitmap_uuid;
	bool local_disk;		/* this node described a disk */
};

/*
 * What the receiver accepts for one command (checked before anything is
 * read or allocated for the payload).  @head: only that many payload bytes
 * go to the stream's buffer, the handler reads the rest itself
 * (bsr_pkt_tail()); 0 reads all of it.  streams == 0: unknown command.
 */
struct bsr_pkt_rule {
	u32 min, max;		/* payload length bounds */
	u32 head;
	u8 streams;		/* BIT(enum bsr_stream_kind) */
	bool per_volume;
};

extern const struct bsr_pkt_rule bsr_repl_rules[P_REPL_LAST - P_DATA + 1];
extern const struct bsr_pkt_rule bsr_rs_rules[P_RS_LAST - P_RS_FIRST + 1];

/* bsr_transport.c */
int bsr_tr_listen(struct bsr_net *n);
void bsr_tr_unlisten(struct bsr_net *n);
int bsr_tr_accept_pair(struct bsr_net *n, unsigned long timeout);
int bsr_tr_connect_pair(struct bsr_net *n);
void bsr_tr_close(struct bsr_net *n);
void bsr_tr_abort(struct bsr_net *n, int how);
void bsr_tr_abort_stream(struct bsr_net *n, struct bsr_stream *st, int how);
int bsr_send(struct bsr_stream *st, enum bsr_packet cmd, u16 vol,
	     const void *payload, u32 len);
void bsr_stream_cork(struct bsr_stream *st, bool on);
/* As bsr_send(), for a packet that another follows at once. */
int bsr_send_more(struct bsr_stream *st, enum bsr_packet cmd, u16 vol,
		  const void *payload, u32 len);
/* @head, then @data_len bytes from @data (may be NULL when 0), copied. */
int bsr_send_data(struct bsr_stream *st, enum bsr_packet cmd, u16 vol,
		  const void *head, u32 head_len, struct iov_iter *data,
		  u32 data_len);
int bsr_recv_some(struct bsr_stream *st, void *buf, size_t len, long timeo);
int bsr_recv_full(struct bsr_stream *st, void *buf, size_t len, long timeo);
int bsr_recv_bvec(struct bsr_stream *st, struct bio_vec *bv, u32 nr,
		  size_t len, long timeo);
bool bsr_should_stop(struct bsr_net *n);

/* bsr_receiver.c */
int bsr_proto_err(struct bsr_net *n, struct bsr_stream *st,
		  const char *what, const struct bsr_pkt_hdr *h);
int bsr_recv_pkt(struct bsr_net *n, struct bsr_stream *st,
		 struct bsr_pkt_hdr *h, long idle_timeo);
void bsr_net_fail(struct bsr_net *n, enum bsr_conn_state why);

u32 bsr_pkt_tail(const struct bsr_pkt_hdr *h);

/*
 * bsr_repl.c: replication of application writes (both ends).
 * start: after the handshake, before the connection is Connected and the
 * meta thread runs; stop: after both threads stopped using the streams.
 * recv: data-stream packets P_DATA..P_REPL_LAST; got_ack: meta-stream ones.
 */
int bsr_repl_start(struct bsr_net *n);
void bsr_repl_stop(struct bsr_net *n);
int bsr_repl_recv(struct bsr_net *n, struct bsr_pkt_hdr *h);
int bsr_repl_got_ack(struct bsr_net *n, struct bsr_pkt_hdr *h);

/*
 * bsr_resync.c: bitmap exchange, resync, verify.  start: Connected, the
 * meta thread runs, before the first data packet is received; stop: the
 * sockets are shut down, before the meta thread is stopped.
 */
int bsr_rs_start(struct bsr_net *n);
void bsr_rs_stop(struct bsr_net *n);
int bsr_rs_recv(struct bsr_net *n, struct bsr_pkt_hdr *h);
int bsr_rs_got_ack(struct bsr_net *n, struct bsr_pkt_hdr *h);

/* bsr_handshake.c */
int bsr_handshake(struct bsr_net *n);
void bsr_hs_snapshot(struct bsr_net *n, struct bsr_peer_device *pd,
		     struct bsr_hs_vol *v);
void bsr_hs_put_vol(const struct bsr_hs_vol *v, struct p_sizes *s,
		    struct p_uuids *u);
void bsr_hs_get_sizes(struct bsr_hs_vol *v, const struct p_sizes *s);
int bsr_hs_get_uuids(struct bsr_hs_vol *v, u16 volume,
		     const struct p_uuids *u);
int bsr_hs_decide_one(struct bsr_net *n, const struct bsr_hs_vol *me,
		      const struct bsr_hs_vol *peer, u32 my_role,
		      u32 peer_role, struct bsr_hs_result *r);

/*
 * bsr_vol_join.c: a volume that gets (or loses) its disk while the
 * connection is Connected.  recv: P_VOL_JOIN, P_VOL_LEAVE on the
 * connection thread; reset: a new connection forgets old exchanges.
 */
int bsr_vj_recv(struct bsr_net *n, struct bsr_pkt_hdr *h);
void bsr_vj_reset(struct bsr_net *n);
int bsr_vj_local(struct bsr_net *n, struct bsr_peer_device *pd);

/*
 * With bsr_cfg_mutex, for bsr_vol_join.c: a peer device joins the live
 * connection (the repl/rs state gets an entry for it; rs_start: after its
 * state is set, act on it) or leaves it; forget: @pd is about to be freed.
 */
int bsr_repl_join(struct bsr_peer_device *pd);
int bsr_repl_forget(struct bsr_peer_device *pd, char *why, size_t whylen);
struct bsr_net *bsr_repl_pin(struct bsr_connection *c);
void bsr_repl_unpin(struct bsr_connection *c);
int bsr_rs_join(struct bsr_peer_device *pd);
void bsr_rs_join_start(struct bsr_peer_device *pd);
int bsr_rs_leave(struct bsr_peer_device *pd);
void bsr_rs_forget(struct bsr_peer_device *pd);
int bsr_hs_alloc_hmac(const char *alg, struct crypto_shash **tfm,
		      char *why, size_t whylen);

/* bsr_ping.c */
int bsr_meta_thread(void *arg);

static inline long bsr_ds_to_jiffies(u32 ds)
{
	return msecs_to_jiffies(ds * 100);
}

#endif /* _BSR_TRANSPORT_H */
