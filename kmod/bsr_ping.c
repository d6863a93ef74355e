// SPDX-License-Identifier: GPL-2.0
/*
 * The meta stream of a connected bsr connection: keep-alive pings.
 *
 * Every ping-int seconds of silence this node sends P_PING; the peer must
 * answer P_PING_ACK within ping-timeout (tenths of a second), otherwise the
 * connection goes to Timeout.  Any packet the peer sends is answered or
 * checked here; anything unexpected is a protocol error.  A failure is
 * handed to the connection thread through bsr_net_fail(), which also
 * shuts the sockets down so that its blocked receive returns.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kthread.h>
#include <linux/sched/mm.h>
#include "bsr_transport.h"

struct ping_state {
	unsigned long next_ping;	/* jiffies */
	unsigned long ack_deadline;	/* 0: no ping outstanding */
	long ping_int;
	long ping_timeo;
};

static long next_wait(struct ping_state *ps)
{
	unsigned long when = ps->ack_deadline ?: ps->next_ping;
	long w = (long)(when - jiffies);

	return w > 0 ? w : 1;
}

/* Timers: send a due ping, detect a missing ack.  0 or -errno. */
static int ping_timers(struct bsr_net *n, struct ping_state *ps)
{
	int err;

	if (ps->ack_deadline) {
		if (time_before(jiffies, ps->ack_deadline))
			return 0;
		pr_warn("%s peer %u: PingAck did not arrive in time\n",
			n->res_name, n->peer_node_id);
		return -ETIMEDOUT;
	}
	if (time_before(jiffies, ps->next_ping))
		return 0;
	err = bsr_send(&n->meta, P_PING, BSR_VOL_NONE, NULL, 0);
	if (err)
		return err;
	atomic64_inc(&n->conn->pings);
	ps->ack_deadline = jiffies + ps->ping_timeo;
	return 0;
}

static int meta_dispatch(struct bsr_net *n, struct ping_state *ps,
			 struct bsr_pkt_hdr *h)
{
	u16 cmd = be16_to_cpu(h->command);

	if (cmd >= P_DATA && cmd <= P_REPL_LAST)
		return bsr_repl_got_ack(n, h);
	if (cmd >= P_RS_FIRST && cmd <= P_RS_LAST)
		return bsr_rs_got_ack(n, h);
	switch (cmd) {
	case P_PING:
		return bsr_send(&n->meta, P_PING_ACK, BSR_VOL_NONE, NULL, 0);
	case P_PING_ACK:
		if (!ps->ack_deadline) {
			pr_err_ratelimited("%s peer %u: protocol error: PingAck without a ping\n",
					   n->res_name, n->peer_node_id);
			return -EPROTO;
		}
		ps->ack_deadline = 0;
		ps->next_ping = jiffies + ps->ping_int;
		return 0;
	default:
		/* check_hdr() let only meta commands through */
		return -EPROTO;
	}
}

static enum bsr_conn_state meta_fail_state(int err)
{
	switch (err) {
	case -ETIMEDOUT:
		return BSR_CONN_STATE_TIMEOUT;
	case -EPROTO:
		return BSR_CONN_STATE_PROTOCOLERROR;
	case -ECONNRESET:
	case -EPIPE:
		return BSR_CONN_STATE_BROKENPIPE;
	default:
		return BSR_CONN_STATE_NETWORKFAILURE;
	}
}

int bsr_meta_thread(void *arg)
{
	struct bsr_net *n = arg;
	unsigned int noio = memalloc_noio_save();
	struct ping_state ps = {
		.ping_int = n->nc.ping_int * HZ,
		.ping_timeo = bsr_ds_to_jiffies(n->nc.ping_timeo),
	};
	struct bsr_pkt_hdr h;
	int err = 0;

	ps.next_ping = jiffies + ps.ping_int;
	while (!kthread_should_stop() && !bsr_should_stop(n)) {
		err = ping_timers(n, &ps);
		if (err)
			break;
		err = bsr_recv_pkt(n, &n->meta, &h, next_wait(&ps));
		if (err == -EAGAIN) {
			err = 0;
			continue;
		}
		if (!err)
			err = meta_dispatch(n, &ps, &h);
		if (err)
			break;
	}
	if (err && !bsr_should_stop(n))
		bsr_net_fail(n, meta_fail_state(err));
	memalloc_noio_restore(noio);
	/* stay around until the connection thread collects us */
	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (!kthread_should_stop())
			schedule();
		__set_current_state(TASK_RUNNING);
	}
	return err;
}
