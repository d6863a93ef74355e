// SPDX-License-Identifier: GPL-2.0
/*
 * TCP transport of a bsr connection.
 *
 * The node with the higher node id listens on the path's local address and
 * accepts only the configured peer address; the other one connects from
 * its local address.  Each attempt opens two streams, data first, then
 * meta; both start with a P_HELLO carrying the node ids and a random
 * cookie that pairs them.  A stray or broken connection is closed without
 * touching the connection state.
 *
 * Every blocking socket call is bounded (sk_rcvtimeo/sk_sndtimeo) and can
 * be woken early by bsr_tr_abort(), which shuts the sockets down.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kthread.h>
#include <linux/random.h>
#include <linux/tcp.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <net/ipv6.h>
#include <net/sock.h>
#include <net/tcp.h>
#include "bsr_transport.h"

#define ACCEPT_SLICE	(HZ / 4)	/* how often accept looks at stop */

bool bsr_should_stop(struct bsr_net *n)
{
	return READ_ONCE(n->stop) || kthread_should_stop();
}

static bool same_host(const struct sockaddr_storage *a,
		      const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return ipv6_addr_equal(&((const struct sockaddr_in6 *)a)->sin6_addr,
				       &((const struct sockaddr_in6 *)b)->sin6_addr);
	return false;
}

static void tr_tune(struct bsr_net *n, struct socket *s)
{
	struct sock *sk = s->sk;

	sock_set_keepalive(sk);
	tcp_sock_set_nodelay(sk);
	lock_sock(sk);
	if (n->nc.sndbuf_size) {
		sk->sk_sndbuf = n->nc.sndbuf_size;
		sk->sk_userlocks |= SOCK_SNDBUF_LOCK;
	}
	if (n->nc.rcvbuf_size) {
		sk->sk_rcvbuf = n->nc.rcvbuf_size;
		sk->sk_userlocks |= SOCK_RCVBUF_LOCK;
	}
	sk->sk_sndtimeo = bsr_ds_to_jiffies(n->nc.timeout);
	sk->sk_allocation = GFP_NOIO;
	release_sock(sk);
}

static int tr_create(struct bsr_net *n, struct socket **s)
{
	return sock_create_kern(n->net, n->addr.my.ss_family, SOCK_STREAM,
				IPPROTO_TCP, s);
}

int bsr_tr_listen(struct bsr_net *n)
{
	struct socket *s;
	int err;

	if (n->listen)
		return 0;
	err = tr_create(n, &s);
	if (err)
		return err;
	sock_set_reuseaddr(s->sk);
	s->sk->sk_rcvtimeo = ACCEPT_SLICE;
	err = kernel_bind(s, (struct sockaddr *)&n->addr.my, n->addr.my_len);
	if (!err)
		err = kernel_listen(s, 8);
	if (err) {
		sock_release(s);
		return err;
	}
	mutex_lock(&n->sock_mutex);
	n->listen = s;
	mutex_unlock(&n->sock_mutex);
	return 0;
}

static void take_sock(struct bsr_net *n, struct socket **slot)
{
	struct socket *s;

	mutex_lock(&n->sock_mutex);
	s = *slot;
	*slot = NULL;
	mutex_unlock(&n->sock_mutex);
	if (s) {
		kernel_sock_shutdown(s, SHUT_RDWR);
		sock_release(s);
	}
}

void bsr_tr_unlisten(struct bsr_net *n)
{
	take_sock(n, &n->listen);
}

/* Close both streams (and a half-paired one); the listener stays. */
void bsr_tr_close(struct bsr_net *n)
{
	take_sock(n, &n->pending);
	take_sock(n, &n->data.sock);
	take_sock(n, &n->meta.sock);
	n->data.send_seq = n->data.recv_seq = 0;
	n->meta.send_seq = n->meta.recv_seq = 0;
}

void bsr_tr_abort(struct bsr_net *n, int how)
{
	mutex_lock(&n->sock_mutex);
	if (n->listen)
		kernel_sock_shutdown(n->listen, SHUT_RDWR);
	if (n->pending)
		kernel_sock_shutdown(n->pending, SHUT_RDWR);
	if (n->data.sock)
		kernel_sock_shutdown(n->data.sock, how);
	if (n->meta.sock)
		kernel_sock_shutdown(n->meta.sock, how);
	mutex_unlock(&n->sock_mutex);
}

void bsr_tr_abort_stream(struct bsr_net *n, struct bsr_stream *st, int how)
{
	mutex_lock(&n->sock_mutex);
	if (st->sock)
		kernel_sock_shutdown(st->sock, how);
	mutex_unlock(&n->sock_mutex);
}

/* ------------------------------------------------------------ raw I/O */

/*
 * One packet whose payload is @head followed by the data in @data
 * (@data_len bytes).  The data is copied into the socket (no page
 * references are kept), so its pages may be reused once this returns.
 * @more is MSG_MORE when another packet follows at once, else 0.
 */
static int send_pkt(struct bsr_stream *st, enum bsr_packet cmd, u16 vol,
		    const void *head, u32 head_len, struct iov_iter *data,
		    u32 data_len, unsigned int more)
{
	struct bsr_pkt_hdr h;
	struct kvec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)head, .iov_len = head_len },
	};
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
	int err = 0, i;

	mutex_lock(&st->send_mutex);
	if (!st->sock) {
		err = -ENOTCONN;
		goto out;
	}
	h.magic = cpu_to_be32(BSR_PKT_MAGIC);
	h.command = cpu_to_be16(cmd);
	h.volume = cpu_to_be16(vol);
	h.length = cpu_to_be32(head_len + data_len);
	h.seq = cpu_to_be32(++st->send_seq);
	for (i = 0; i < 2 && !err; i++) {
		if (i == 0) {
			iov_iter_kvec(&msg.msg_iter, ITER_SOURCE, iov, 2,
				      sizeof(h) + head_len);
			msg.msg_flags = MSG_NOSIGNAL |
					(data_len ? MSG_MORE : more);
		} else {
			if (!data_len)
				break;
			msg.msg_iter = *data;
			msg.msg_flags = MSG_NOSIGNAL | more;
		}
		while (msg_data_left(&msg)) {
			int sent = sock_sendmsg(st->sock, &msg);

			if (sent == -EAGAIN || sent == -EINTR)
				err = -ETIMEDOUT;
			else if (sent <= 0)
				err = sent ?: -EPIPE;
			if (err)
				break;
			atomic64_add(sent, &st->conn->sent_bytes);
		}
	}
out:
	mutex_unlock(&st->send_mutex);
	return err;
}

int bsr_send_data(struct bsr_stream *st, enum bsr_packet cmd, u16 vol,
		  const void *head, u32 head_len, struct iov_iter *data,
		  u32 data_len)
{
	return send_pkt(st, cmd, vol, head, head_len, data, data_len, 0);
}

/*
 * tcp-cork: while a batch of packets is sent, only full segments leave;
 * uncorking pushes the rest.  TCP flushes a forgotten cork after 200 ms,
 * so a missed uncork delays, it never hangs.
 */
void bsr_stream_cork(struct bsr_stream *st, bool on)
{
	mutex_lock(&st->send_mutex);
	if (st->sock)
		tcp_sock_set_cork(st->sock->sk, on);
	mutex_unlock(&st->send_mutex);
}

/* A packet without data pages; @more as in send_pkt(). */
static int send_small(struct bsr_stream *st, enum bsr_packet cmd, u16 vol,
		      const void *payload, u32 len, unsigned int more)
{
	if (WARN_ON_ONCE(len > BSR_MAX_PAYLOAD))
		return -EMSGSIZE;
	return send_pkt(st, cmd, vol, payload, len, NULL, 0, more);
}

int bsr_send(struct bsr_stream *st, enum bsr_packet cmd, u16 vol,
	     const void *payload, u32 len)
{
	return send_small(st, cmd, vol, payload, len, 0);
}

/*
 * A small packet that another one follows at once (a barrier before its
 * write): TCP holds it to leave in the same segment as the next.
 */
int bsr_send_more(struct bsr_stream *st, enum bsr_packet cmd, u16 vol,
		  const void *payload, u32 len)
{
	return send_small(st, cmd, vol, payload, len, MSG_MORE);
}

/*
 * Receive into @msg's iterator (advancing it) within @timeo jiffies.
 * Returns the number of bytes received (0 when nothing came in time),
 * -ECONNRESET when the peer closed the stream, another -errno on failure.
 */
static int recv_msg(struct bsr_stream *st, struct msghdr *msg, long timeo)
{
	int r;

	if (!st->sock)
		return -ENOTCONN;
	WRITE_ONCE(st->sock->sk->sk_rcvtimeo, timeo);
	r = sock_recvmsg(st->sock, msg, MSG_WAITALL | MSG_NOSIGNAL);
	if (r == -EAGAIN || r == -EINTR)
		return 0;
	if (r == 0)
		return -ECONNRESET;
	if (r > 0)
		atomic64_add(r, &st->conn->recv_bytes);
	return r;
}

/* All of @msg's iterator within @timeo jiffies, or -ETIMEDOUT/-errno. */
static int recv_msg_full(struct bsr_stream *st, struct msghdr *msg,
			 long timeo)
{
	unsigned long deadline = jiffies + timeo;

	while (msg_data_left(msg)) {
		long left = timeo;
		int r;

		if (timeo != MAX_SCHEDULE_TIMEOUT) {
			left = (long)(deadline - jiffies);
			if (left <= 0)
				return -ETIMEDOUT;
		}
		r = recv_msg(st, msg, left);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Up to @len bytes within @timeo jiffies; returns as recv_msg(). */
int bsr_recv_some(struct bsr_stream *st, void *buf, size_t len, long timeo)
{
	struct kvec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };

	iov_iter_kvec(&msg.msg_iter, ITER_DEST, &iov, 1, len);
	return recv_msg(st, &msg, timeo);
}

/* Exactly @len bytes within @timeo jiffies, or -ETIMEDOUT/-errno. */
int bsr_recv_full(struct bsr_stream *st, void *buf, size_t len, long timeo)
{
	struct kvec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };

	iov_iter_kvec(&msg.msg_iter, ITER_DEST, &iov, 1, len);
	return recv_msg_full(st, &msg, timeo);
}

/*
 * @len bytes into the pages of @bv (@nr of them) with one receive call
 * per arrival of data rather than one per page.
 */
int bsr_recv_bvec(struct bsr_stream *st, struct bio_vec *bv, u32 nr,
		  size_t len, long timeo)
{
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };

	iov_iter_bvec(&msg.msg_iter, ITER_DEST, bv, nr, len);
	return recv_msg_full(st, &msg, timeo);
}

/* ------------------------------------------------------------- hellos */

static int read_hello(struct bsr_net *n, struct socket *s, struct p_hello *p,
		      const char **why)
{
	struct bsr_stream tmp = { .sock = s, .conn = n->conn };
	struct bsr_pkt_hdr h;
	long timeo = bsr_ds_to_jiffies(n->nc.timeout);
	int err;

	*why = "no hello";
	err = bsr_recv_full(&tmp, &h, sizeof(h), timeo);
	if (err)
		return err;
	*why = "not a bsr hello";
	if (be32_to_cpu(h.magic) != BSR_PKT_MAGIC ||
	    be16_to_cpu(h.command) != P_HELLO ||
	    be32_to_cpu(h.length) != sizeof(*p) ||
	    be32_to_cpu(h.seq) != 1 || be16_to_cpu(h.volume) != BSR_VOL_NONE)
		return -EPROTO;
	*why = "truncated hello";
	err = bsr_recv_full(&tmp, p, sizeof(*p), timeo);
	if (err)
		return err;
	/* node ids are checked (and refusals explained) by the handshake */
	*why = "hello with a bad stream type";
	if (p->stream > BSR_STREAM_META)
		return -EPROTO;
	return 0;
}

/* Returns 1 once a data and a meta stream are paired, else 0. */
static int take_accepted(struct bsr_net *n, struct socket *s)
{
	struct sockaddr_storage from = {};
	struct socket *old = NULL;
	struct p_hello p;
	const char *why;
	int len, err;

	len = kernel_getpeername(s, (struct sockaddr *)&from);
	if (len < 0 || !same_host(&from, &n->addr.peer)) {
		pr_warn_ratelimited("%s peer %u: refused connection from %pISpc: not the configured peer address\n",
				    n->res_name, n->peer_node_id, &from);
		sock_release(s);
		return 0;
	}
	tr_tune(n, s);
	err = read_hello(n, s, &p, &why);
	if (err) {
		pr_warn_ratelimited("%s peer %u: dropped connection from %pISpc: %s (%d)\n",
				    n->res_name, n->peer_node_id, &from, why,
				    err);
		sock_release(s);
		return 0;
	}
	mutex_lock(&n->sock_mutex);
	if (p.stream == BSR_STREAM_DATA) {
		old = n->pending;
		n->pending = s;
		n->pending_cookie = be64_to_cpu(p.cookie);
		s = NULL;
	} else if (n->pending && n->pending_cookie == be64_to_cpu(p.cookie)) {
		n->data.sock = n->pending;
		n->meta.sock = s;
		n->pending = NULL;
		n->data.recv_seq = 1;
		n->meta.recv_seq = 1;
		mutex_unlock(&n->sock_mutex);
		return 1;
	}
	if (s)		/* a meta stream nobody asked for */
		old = s;
	mutex_unlock(&n->sock_mutex);
	if (old) {
		if (old == s)
			pr_warn_ratelimited("%s peer %u: meta stream without a matching data stream from %pISpc\n",
					    n->res_name, n->peer_node_id, &from);
		sock_release(old);
	}
	return 0;
}

/*
 * Passive side: accept until a data and a meta stream from the peer are
 * paired (0), the time is up (-EAGAIN) or a stop is requested (-EINTR).
 */
int bsr_tr_accept_pair(struct bsr_net *n, unsigned long timeout)
{
	unsigned long deadline = jiffies + timeout;
	struct socket *s;
	int err;

	while (!bsr_should_stop(n)) {
		if (time_after(jiffies, deadline))
			return -EAGAIN;
		err = kernel_accept(n->listen, &s, 0);
		if (err == -EAGAIN || err == -EINTR)
			continue;
		if (err)
			return bsr_should_stop(n) ? -EINTR : err;
		if (take_accepted(n, s))
			return 0;
	}
	return -EINTR;
}

static int connect_stream(struct bsr_net *n, struct bsr_stream *st,
			  enum bsr_stream_kind kind, u64 cookie)
{
	struct sockaddr_storage src = n->addr.my;
	struct p_hello p = {
		.stream = kind,
		.sender_node_id = cpu_to_be32(n->my_node_id),
		.receiver_node_id = cpu_to_be32(n->peer_node_id),
		.cookie = cpu_to_be64(cookie),
	};
	struct socket *s;
	int err;

	err = tr_create(n, &s);
	if (err)
		return err;
	tr_tune(n, s);
	if (src.ss_family == AF_INET)
		((struct sockaddr_in *)&src)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&src)->sin6_port = 0;
	err = kernel_bind(s, (struct sockaddr *)&src, n->addr.my_len);
	if (err) {
		sock_release(s);
		return err;
	}
	mutex_lock(&n->sock_mutex);
	st->sock = s;
	mutex_unlock(&n->sock_mutex);
	if (bsr_should_stop(n))
		return -EINTR;
	err = kernel_connect(s, (struct sockaddr *)&n->addr.peer,
			     n->addr.peer_len, 0);
	if (err)
		return err;
	return bsr_send(st, P_HELLO, BSR_VOL_NONE, &p, sizeof(p));
}

/* Active side: both streams, or -errno (the caller closes what is open). */
int bsr_tr_connect_pair(struct bsr_net *n)
{
	u64 cookie = get_random_u64();
	int err;

	err = connect_stream(n, &n->data, BSR_STREAM_DATA, cookie);
	if (!err)
		err = connect_stream(n, &n->meta, BSR_STREAM_META, cookie);
	return err;
}
