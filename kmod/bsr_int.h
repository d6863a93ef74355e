/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bsr internal objects: resources, devices (volumes), connections (peers),
 * peer devices and paths.
 *
 * Locking: every configuration change and every walk over the object lists
 * happens under bsr_cfg_mutex (one global mutex: simple and obviously
 * correct).  The request path never takes it: it looks at the device's
 * disk state under RCU and pins the backing disk with local_cnt; detach
 * waits for local_cnt to drain after an RCU grace period.
 */
#ifndef _BSR_INT_H
#define _BSR_INT_H

#include <linux/types.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/blkdev.h>
#include <linux/workqueue.h>
#include <linux/bio.h>
#include <linux/sched/clock.h>
#include <net/genetlink.h>
#include "bsr_nl_gen.h"
#include "bsr_meta.h"
#include "bsr_resync.h"

#define BSR_VERSION "0.1.0"

extern struct mutex bsr_cfg_mutex;
extern struct list_head bsr_resources;
extern struct genl_family bsr_genl_family;
extern int bsr_major;
extern bool bsr_exiting;

struct bsr_resource {
	struct list_head list;		/* on bsr_resources */
	char name[BSR_NAME_LEN];
	struct bsr_res_opts opts;
	enum bsr_role role;
	bool susp;			/* suspend-io by the admin */
	spinlock_t lock;		/* role vs. open counts, susp */
	wait_queue_head_t susp_wait;
	struct list_head devices;	/* sorted by volume */
	struct list_head connections;	/* sorted by peer node id */
	atomic64_t write_seq;		/* replicated writes submitted */
};

/*
 * Counters every request bumps live per CPU (no locked instruction on the
 * I/O path, no cache line shared between CPUs); readers add them up with
 * bsr_dev_io_stats().
 */
struct bsr_dev_io_stats {
	u64 read_sectors, write_sectors, read_ios, write_ios;
	u64 flush_ios, discard_ios, completed_ios;
	u64 local_lat_ns, master_lat_ns;
	u64 local_hist[BSR_LAT_BUCKETS];
	u64 master_hist[BSR_LAT_BUCKETS];
};

struct bsr_dev_stats {
	struct bsr_dev_io_stats __percpu *io;
	atomic64_t io_errors;
	atomic_t upper_pending, lower_pending;
};

struct bsr_device {
	struct list_head list;		/* on resource->devices */
	struct bsr_resource *resource;
	u32 volume;
	u32 minor;
	struct gendisk *disk;
	enum bsr_disk_state disk_state;	/* READ_ONCE in the I/O path */
	struct bsr_backing *backing;	/* valid while local_cnt is held */
	struct bsr_disk_conf disk_conf;
	bool disk_flushes;		/* hot copies of disk_conf fields */
	bool io_error_detach;
	atomic_t local_cnt;		/* requests using the backing disk */
	wait_queue_head_t wait;		/* local_cnt / upper_pending drain */
	int open_cnt, open_rw;		/* under resource->lock */
	struct bio_set bio_set;
	struct workqueue_struct *submit_wq;
	struct work_struct submit_work;
	spinlock_t submit_lock;
	struct bio_list submit_list;	/* writes waiting for the AL */
	struct work_struct dev_work;	/* events from I/O context */
	unsigned long work_bits;	/* BSR_DW_* */
	bool dying;			/* unlinked, being destroyed */
	struct bsr_dev_stats stats;
	/* write replication (bsr_peer_req.c, bsr_repl.c) */
	spinlock_t range_lock;		/* ranges, repl_targets */
	struct list_head ranges;	/* bsr_range, in locking order */
	wait_queue_head_t range_wait;
	struct list_head repl_targets;	/* bsr_repl_target of live peers */
	unsigned long repl_slots;	/* bitmap slots of known peers */
};

#define BSR_DW_IO_ERROR	0	/* on-io-error detach */
#define BSR_DW_OPEN	1	/* open count changed: notify */

struct bsr_path {
	struct list_head list;
	struct bsr_connection *connection;
	u8 my_addr[BSR_ADDR_LEN];
	u32 my_addr_len;
	u8 peer_addr[BSR_ADDR_LEN];
	u32 peer_addr_len;
	bool established;		/* carries the connection now */
};

struct bsr_net;

struct bsr_connection {
	struct list_head list;		/* on resource->connections */
	struct bsr_resource *resource;
	u32 peer_node_id;
	char name[BSR_NAME_LEN];
	struct bsr_net_conf net_conf;
	enum bsr_conn_state cstate;
	struct list_head peer_devices;	/* sorted by volume */
	struct list_head paths;
	/* replication network (bsr_receiver.c); NULL while StandAlone */
	struct bsr_net *net;
	enum bsr_role peer_role;
	u32 agreed_proto;
	atomic64_t sent_bytes, recv_bytes, pings, reconnects, barriers;
	/* write replication (bsr_repl.c) */
	struct bsr_repl *repl;		/* while connected, repl_conn_lock */
	atomic64_t ap_in_flight;	/* sectors sent, not yet acked */
	/* resync (bsr_resync.c) */
	struct bsr_rs_conn *rs;		/* while connected */
};

struct bsr_peer_device {
	struct list_head list;		/* on connection->peer_devices */
	struct bsr_connection *connection;
	struct bsr_device *device;
	struct bsr_peer_device_conf conf;
	enum bsr_repl_state repl_state;
	u32 resync_susp;		/* BSR_SUSP_* */
	enum bsr_disk_state peer_disk_state;	/* from the handshake */
	u64 peer_current_uuid;
	u64 bitmap_uuid;
	/* write replication statistics (bsr_repl.c), never reset */
	atomic64_t repl_sent_sectors, repl_recv_sectors;
	atomic64_t repl_acked_ios, repl_net_lat_ns;
	atomic_t repl_pending;		/* writes sent, not yet acked */
	atomic_t repl_unacked;		/* peer writes not yet acked by us */
	struct bsr_rs_stats rs_stats;	/* resync/verify (bsr_resync.c) */
};

/* bsr_nl.c */
int bsr_nl_init(void);
void bsr_nl_exit(void);

/* bsr_resource.c */
struct bsr_resource *bsr_find_resource(const char *name);
struct bsr_resource *bsr_create_resource(const char *name,
					 const struct bsr_res_opts *opts);
void bsr_destroy_resource(struct bsr_resource *res);
struct bsr_device *bsr_find_volume(struct bsr_resource *res, u32 volume);
struct bsr_device *bsr_find_minor(u32 minor);
int bsr_down_resource(struct bsr_resource *res, char *why, size_t whylen);
void bsr_down_all(void);

/* bsr_device.c */
int bsr_dev_init(void);
void bsr_dev_exit(void);
struct bsr_device *bsr_create_device(struct bsr_resource *res, u32 volume,
				     u32 minor, char *why, size_t whylen);
int bsr_destroy_device(struct bsr_device *dev, char *why, size_t whylen);
int bsr_attach(struct bsr_device *dev, const struct bsr_disk_conf *dc,
	       char *why, size_t whylen);
int bsr_detach(struct bsr_device *dev, bool force, char *why, size_t whylen);
int bsr_resize(struct bsr_device *dev, u64 size, bool force,
	       char *why, size_t whylen);
void bsr_set_disk_conf(struct bsr_device *dev, const struct bsr_disk_conf *dc);
sector_t bsr_dev_capacity(struct bsr_device *dev);
void bsr_dev_io_error(struct bsr_device *dev);
void bsr_dev_open_changed(struct bsr_device *dev);

/* bsr_req.c */
unsigned int bsr_req_front_pad(void);
u64 bsr_requests_allocated(void);
void bsr_dev_io_stats(struct bsr_device *dev, struct bsr_dev_io_stats *sum);
void bsr_submit_bio(struct bio *bio);
void bsr_submit_work(struct work_struct *w);
bool bsr_get_ldev(struct bsr_device *dev);
void bsr_put_ldev(struct bsr_device *dev);
void bsr_drain_ldev(struct bsr_device *dev);

/* bsr_repl.c, bsr_peer_req.c */
struct bsr_req;
struct bsr_repl;
#define BSR_REPL_MAX_TARGETS	4	/* live peers a write goes to at once */

/*
 * A replicated write's place in the write order: @seq, its number in the
 * resource's write_seq when it was submitted, and the epoch it was sent
 * in per connection it was sent on.
 */
struct bsr_repl_stamp {
	u64 seq;
	const struct bsr_repl *rc[BSR_REPL_MAX_TARGETS];
	u32 epoch[BSR_REPL_MAX_TARGETS];
	u8 nr;
};

void bsr_req_peer_get(struct bsr_req *req);
void bsr_req_peer_put(struct bsr_req *req);
void bsr_repl_cork(struct bsr_device *dev, bool on);
int bsr_repl_write(struct bsr_device *dev, struct bio *bio,
		   struct bsr_req *req, struct bsr_repl_stamp *st);
void bsr_repl_write_done(struct bsr_device *dev,
			 const struct bsr_repl_stamp *st);
void bsr_repl_drain(struct bsr_connection *conn);
void bsr_repl_dev_init(struct bsr_device *dev);
void bsr_repl_track_peer(struct bsr_connection *conn);
int bsr_repl_secondary_wait(struct bsr_resource *res, char *why,
			    size_t whylen);
int bsr_repl_may_detach(struct bsr_device *dev, char *why, size_t whylen);
void bsr_repl_peer_stats(struct bsr_peer_device *pd,
			 struct bsr_peer_device_stats *ps);
void bsr_repl_conn_stats(struct bsr_connection *c,
			 struct bsr_conn_stats *cs);
void bsr_repl_send_state(struct bsr_resource *res);

/* bsr_conn.c */
struct bsr_connection *bsr_find_connection(struct bsr_resource *res,
					   u32 peer_node_id);
struct bsr_connection *bsr_find_conn_name(struct bsr_resource *res,
					  const char *name);
struct bsr_connection *bsr_create_connection(struct bsr_resource *res,
					     u32 peer_node_id,
					     const char *name,
					     const struct bsr_net_conf *nc);
void bsr_destroy_connection(struct bsr_connection *conn);
struct bsr_peer_device *bsr_create_peer_device(struct bsr_connection *conn,
					       struct bsr_device *dev);
void bsr_destroy_peer_device(struct bsr_peer_device *pd);
struct bsr_peer_device *bsr_find_peer_device(struct bsr_connection *conn,
					     u32 volume);
struct bsr_path *bsr_find_path(struct bsr_connection *conn,
			       const struct bsr_ctx *ctx);
struct bsr_path *bsr_create_path(struct bsr_connection *conn,
				 const struct bsr_ctx *ctx);
void bsr_destroy_path(struct bsr_path *path);

/*
 * bsr_vol_join.c: a volume attached, detached or deleted while its
 * connections may be Connected (bsr_cfg_mutex held).
 */
void bsr_vj_attached(struct bsr_device *dev);
int bsr_vj_detaching(struct bsr_device *dev, bool may_refuse,
		     char *why, size_t whylen);
int bsr_vj_forget(struct bsr_device *dev, char *why, size_t whylen);

/* bsr_receiver.c: the replication network of a connection */
struct net;
int bsr_conn_connect(struct bsr_connection *conn, struct net *net,
		     bool discard_my_data, char *why, size_t whylen);
void bsr_conn_disconnect(struct bsr_connection *conn, bool force);

/* bsr_state.c */
int bsr_set_primary(struct bsr_resource *res, bool force,
		    char *why, size_t whylen);
int bsr_set_secondary(struct bsr_resource *res, char *why, size_t whylen);
int bsr_set_disk_state(struct bsr_device *dev, enum bsr_disk_state ds);
enum bsr_disk_state bsr_disk_state_from_md(struct bsr_backing *b);
int bsr_new_c_uuid(struct bsr_device *dev, bool clear_bm,
		   char *why, size_t whylen);
int bsr_invalidate(struct bsr_device *dev, char *why, size_t whylen);
int bsr_outdate(struct bsr_device *dev, char *why, size_t whylen);
void bsr_set_susp(struct bsr_resource *res, bool susp);
int bsr_dev_open(struct block_device *bdev, fmode_t mode);
void bsr_dev_release(struct gendisk *disk, fmode_t mode);

/* bsr_notify.c */
enum bsr_obj_kind {
	BSR_OBJ_RESOURCE,
	BSR_OBJ_DEVICE,
	BSR_OBJ_CONNECTION,
	BSR_OBJ_PEER_DEVICE,
	BSR_OBJ_PATH,
};

extern const u8 bsr_ev_cmd[];
int bsr_put_object(struct sk_buff *skb, enum bsr_obj_kind kind, void *obj,
		   bool config);
void bsr_notify_resource(struct bsr_resource *res, enum bsr_notify_type t);
void bsr_notify_device(struct bsr_device *dev, enum bsr_notify_type t);
void bsr_notify_connection(struct bsr_connection *c, enum bsr_notify_type t);
void bsr_notify_peer_device(struct bsr_peer_device *pd,
			    enum bsr_notify_type t);
void bsr_set_pd_state(struct bsr_peer_device *pd, enum bsr_repl_state rs,
		      enum bsr_disk_state pds);
void bsr_notify_path(struct bsr_path *p, enum bsr_notify_type t);
void bsr_notify_helper(struct bsr_connection *c, u32 volume,
		       const char *helper);
u32 bsr_notify_seq(void);
void bsr_module_stats(struct bsr_module_stats *ms);

/* object -> message helpers (bsr_notify.c), also used by the dumps */
int bsr_put_resource(struct sk_buff *skb, struct bsr_resource *res);
int bsr_put_device(struct sk_buff *skb, struct bsr_device *dev);
int bsr_put_connection(struct sk_buff *skb, struct bsr_connection *c);
int bsr_put_peer_device(struct sk_buff *skb, struct bsr_peer_device *pd);
int bsr_put_path(struct sk_buff *skb, struct bsr_path *p);
int bsr_put_notify(struct sk_buff *skb, u32 type, u32 seq);

/*
 * Time stamps for latency statistics.  local_clock() instead of
 * ktime_get(): it never touches the clocksource hardware (an emulated HPET
 * read costs microseconds per request in a guest) and per-request
 * latencies do not need a global clock; a completion on another CPU may
 * see a slightly earlier time, hence the clamp.
 */
static inline u64 bsr_now_ns(void)
{
	return local_clock();
}

static inline u64 bsr_ns_since(u64 then)
{
	u64 now = local_clock();

	return now > then ? now - then : 0;
}

static inline bool bsr_disk_usable(enum bsr_disk_state ds)
{
	return ds >= BSR_DISK_STATE_INCONSISTENT &&
	       ds != BSR_DISK_STATE_DUNKNOWN;
}

#endif /* _BSR_INT_H */
